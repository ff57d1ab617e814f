-- Argo CD health of an Edgeline EdgeCluster (edgeline.io/v1alpha1).
-- A cluster that cannot take workloads (no Ready node, no answer, facts too old) is
-- Degraded: deployments to it stall. Argo CD runs checks from argocd-cm without Lua's
-- string and math libraries: only .., tostring and the base functions are used here.
local hs = {}

local function condition(status, ctype)
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == ctype then
        return c
      end
    end
  end
  return nil
end

-- "Reason: message" of a condition, or `fallback` when there is none or it says nothing.
local function says(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or next(status) == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first probe of the cluster"
  return hs
end

-- A phase written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to observe generation " .. generation
  return hs
end

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
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to report a phase"
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
