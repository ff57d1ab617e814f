-- Argo CD health of an Edgeline EdgeDeployment (edgeline.io/v1alpha1).
-- A change waiting for approval, or a rollout held between waves by the edgeline.io/pause
-- annotation, is Suspended: nothing is wrong, a person has to act. A rollback is Degraded:
-- the desired version does not run.

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

local early = not_observed("Waiting for the Edgeline operator to resolve the model and the clusters")
if early ~= nil then
  return early
end

local status = obj.status
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
  -- Held by the edgeline.io/pause annotation: the wave in status.rollout is done and soaked,
  -- and the next one starts once a person removes the annotation.
  local wave = ""
  if status.rollout ~= nil and status.rollout.waveName ~= nil then
    wave = " after wave " .. status.rollout.waveName
  end
  hs.status = "Suspended"
  hs.message = "Rollout of " .. version_of(status.desiredRevision, "the new revision") .. " paused" .. wave
      .. " by the edgeline.io/pause annotation" .. clusters_ready(status, "; ")
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
else
  hs = unexpected_phase(phase)
end
return hs
