"""The pull site's agent (`edgeline agent`, docs/edge-autonomy.md): runs in the site's K3s
cluster, dials out to the hub only, runs what the hub assigned to its cluster, keeps the
current and last known-good models on site, and rolls back by itself on a site alert."""
