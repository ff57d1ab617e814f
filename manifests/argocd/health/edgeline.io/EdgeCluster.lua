-- Argo CD health of an Edgeline EdgeCluster (edgeline.io/v1alpha1).
-- A cluster that cannot take workloads (no Ready node, no answer, facts too old) is
-- Degraded: deployments to it stall.

local early = not_observed("Waiting for the first probe of the cluster")
if early ~= nil then
  return early
end

local status = obj.status
local ready = condition(status, "Ready")
local phase = status.phase
if phase == "Ready" then
  hs.status = "Healthy"
  local version = ""
  if status.kubernetesVersion ~= nil then
    version = status.kubernetesVersion .. ": "
  end
  local message = "the cluster answers"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    message = ready.message
  end
  hs.message = version .. message
elseif phase == "NotReady" then
  hs.status = "Degraded"
  hs.message = says(ready, "The cluster cannot run workloads")
elseif phase == "Unreachable" then
  local since = ""
  if status.lastHeartbeat ~= nil then
    since = " (last heartbeat " .. status.lastHeartbeat .. ")"
  end
  hs.status = "Degraded"
  hs.message = says(ready, "The cluster does not answer") .. since
elseif phase == "Stale" then
  -- The facts in status are older than spec.staleAfterSeconds: say why, and how old.
  hs.status = "Degraded"
  hs.message = says(ready, "The cluster does not answer") .. "; " .. says(condition(status, "Stale"), "status is stale")
else
  hs = unexpected_phase(phase)
end
return hs
