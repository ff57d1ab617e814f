"""`edgeline dev up|down|status`: the local hub and edge control planes, their real nodes
and the local registry."""

from __future__ import annotations

import argparse
import sys

from edgeline.devenv.environment import DevEnvError, DevEnvironment


def register(sub: argparse._SubParsersAction) -> None:
    dev = sub.add_parser("dev", help="local hub and edge clusters for development and tests")
    dev.add_argument("--state-dir", default=".edgeline/dev", help="where state, logs and kubeconfigs live")
    actions = dev.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start hub, edge-a and edge-b (a no-op when they run)")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for each cluster")
    up.set_defaults(func=_up)
    actions.add_parser("down", help="stop everything `up` started").set_defaults(func=_down)
    actions.add_parser("status", help="what runs; exit 0 only when all clusters answer").set_defaults(func=_status)


def _up(args) -> int:
    env = DevEnvironment(args.state_dir)
    already = env.is_up()
    try:
        env.up(timeout_s=args.timeout)
    except DevEnvError as exc:
        print(f"edgeline dev up failed: {exc}", file=sys.stderr)
        return 1
    print("The local clusters were already running." if already else "The local clusters are up.")
    for name, report in env.status().items():
        print(f"  {name:7} {report['server']}  kubeconfig: {report['kubeconfig']}")
        if "node" in report:
            node = report["node"]
            print(f"          real node {node['name']} ({node['runtime']}, Pods in {node['pod_subnet']})")
    reg = env.registry_status()
    if reg["address"]:
        print(f"  registry {reg['address']} (plain HTTP, loopback): {', '.join(sorted(reg['images']))}")
        print(f"  Pods reach the host at {env.pod_visible_host}")
    hub = env.kubeconfig("hub")
    print(f"\nTry:  kubectl --kubeconfig {hub} get nodes -L kubernetes.io/arch")
    print("Stop: edgeline dev down")
    return 0


def _down(args) -> int:
    env = DevEnvironment(args.state_dir)
    try:
        env.down()
    except DevEnvError as exc:
        print(f"edgeline dev down: {exc}", file=sys.stderr)
        return 1
    left = env.leftover_processes()
    if left:
        print(f"edgeline dev down: processes still running: {left}", file=sys.stderr)
        return 1
    print("The local clusters are stopped.")
    return 0


def _status(args) -> int:
    env = DevEnvironment(args.state_dir)
    report = env.status()
    healthy = True
    for name, r in report.items():
        comps = r["components"]
        down = [c for c, ok in comps.items() if not ok]
        ok = r["answers"] and comps and not down
        healthy &= bool(ok)
        state = "up" if ok else ("down" if not comps else f"degraded (not running: {', '.join(down) or 'api'})")
        print(f"{name:8} {state:10} {r.get('server', '')}")
        node = r.get("node")
        if node and comps:
            healthy &= node["ready"]
            print(f"  node {node['name']:14} {'Ready' if node['ready'] else 'NotReady':9} "
                  f"{node['runtime'] or '-':22} {node['kubelet'] or '-':10} Pods {node['pod_subnet']}")
    reg = env.registry_status()
    if reg["address"] and reg["running"]:
        healthy &= reg["answers"]
        state = "up" if reg["answers"] else "not answering"
        print(f"{'registry':8} {state:10} http://{reg['address']}  images: "
              f"{', '.join(f'{k}={v}' for k, v in sorted(reg['images'].items())) or '-'}")
    elif reg["address"]:
        print(f"{'registry':8} {'down':10}")
    return 0 if healthy else 1
