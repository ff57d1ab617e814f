-- Argo CD health of an Edgeline EdgeDeployment (edgeline.io/v1alpha1).
-- A change waiting for approval, or a rollout paused at a gated wave, is Suspended:
-- nothing is wrong, a person has to act. A rollback is Degraded: the desired version
-- does not run. Argo CD runs checks from argocd-cm without Lua's string and math
-- libraries: only .., tostring and the base functions are used here.
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

-- "defect-detector 2.0.0" for people; the MLModel or the revision hash when that is all
-- there is; `unknown` when the operator has not resolved the revision.
local function version_of(revision, unknown)
  if revision == nil then
    return unknown
  end
  if revision.model ~= nil and revision.version ~= nil then
    return revision.model .. " " .. revision.version
  end
  if revision.mlmodel ~= nil then
    return revision.mlmodel
  end
  return "revision " .. tostring(revision.revision)
end

-- " (1 of 2 approvals)", or "" when the operator has not said how many are needed.
local function approvals_of(pending)
  if pending == nil or pending.needed == nil then
    return ""
  end
  local given = 0
  if pending.approvals ~= nil then
    given = #pending.approvals
  end
  return " (" .. given .. " of " .. pending.needed .. " approvals)"
end

-- status.ready ("2/3") after `separator`, or "" when the operator has not counted yet.
local function clusters_ready(status, separator)
  if status.ready == nil then
    return ""
  end
  return separator .. status.ready .. " clusters ready"
end

-- The Ready condition's message alone (for phases whose reason the message repeats).
local function ready_message(status, fallback)
  local c = condition(status, "Ready")
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil or next(status) == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to resolve the model and the clusters"
  return hs
end

-- A phase written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to observe generation " .. generation
  return hs
end

local phase = status.phase
if phase == "Healthy" then
  hs.status = "Healthy"
  hs.message = version_of(status.currentRevision, "The model") .. " runs on every selected cluster" .. clusters_ready(status, ": ")
elseif phase == "AwaitingApproval" then
  local pending = status.pendingApproval
  local revision = status.desiredRevision
  if pending ~= nil then
    revision = pending.revision
  end
  hs.status = "Suspended"
  hs.message = version_of(revision, "A new revision") .. " awaits approval" .. approvals_of(pending)
elseif phase == "Paused" then
  -- Paused before a wave that needs its own approval; the revision is the one rolling out.
  local revision = status.desiredRevision
  if status.pendingApproval ~= nil then
    revision = status.pendingApproval.revision
  end
  local wave = ""
  if status.rollout ~= nil and status.rollout.waveName ~= nil then
    wave = " before wave " .. status.rollout.waveName
  end
  hs.status = "Suspended"
  hs.message = "Rollout of " .. version_of(revision, "the new revision") .. " paused" .. wave .. approvals_of(status.pendingApproval)
      .. ": " .. ready_message(status, "waiting for a person")
elseif phase == "Progressing" then
  local wave = ""
  if status.rollout ~= nil and status.rollout.waveName ~= nil then
    wave = ", wave " .. status.rollout.waveName
  end
  hs.status = "Progressing"
  hs.message = "Rolling out " .. version_of(status.desiredRevision, "the new revision") .. wave .. clusters_ready(status, ", ")
elseif phase == "Pending" then
  hs.status = "Progressing"
  hs.message = says(condition(status, "Ready"), "Waiting for the model and the clusters")
elseif phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = says(condition(status, "Ready"), "The rollout failed") .. clusters_ready(status, "; ")
elseif phase == "RolledBack" then
  local alert = ""
  if status.rollbacks ~= nil and status.rollbacks[1] ~= nil and status.rollbacks[1].alert ~= nil then
    alert = " after alert " .. status.rollbacks[1].alert
  end
  hs.status = "Degraded"
  hs.message = version_of(status.desiredRevision, "The new revision") .. " rolled back to "
      .. version_of(status.currentRevision, "the last known-good revision")
      .. alert .. ": " .. ready_message(status, "it needs a new approval to return")
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to report a phase"
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
