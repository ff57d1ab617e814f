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

-- The metric checks of the wave being analysed (status.analysis, docs/analysis.md): the first
-- failed one as "check NAME failed on CLUSTER: REASON: message", or nil.
local function failed_check(status)
  if status.analysis == nil or status.analysis.checks == nil then
    return nil
  end
  for _, c in ipairs(status.analysis.checks) do
    if c.phase == "Failed" then
      return "check " .. tostring(c.name) .. " failed on " .. tostring(c.cluster) .. ": " .. says(c, "failed")
    end
  end
  return nil
end

-- "; checks 1/2 passed" while the current wave's checks run, or "".
local function checks_progress(status)
  local analysis = status.analysis
  if analysis == nil or analysis.checks == nil or analysis.phase ~= "Running" or status.rollout == nil
      or analysis.wave ~= status.rollout.waveName or analysis.revision ~= status.rollout.revision then
    return ""
  end
  local passed = 0
  for _, c in ipairs(analysis.checks) do
    if c.phase == "Passed" then
      passed = passed + 1
    end
  end
  return "; checks " .. passed .. "/" .. #analysis.checks .. " passed"
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
      .. checks_progress(status)
elseif phase == "Pending" then
  hs.status = "Progressing"
  hs.message = says(condition(status, "Ready"), "Waiting for the model and the clusters")
elseif phase == "Degraded" then
  hs.status = "Degraded"
  local failed = failed_check(status)
  if failed ~= nil and status.rollout ~= nil and status.analysis.revision == status.rollout.revision then
    hs.message = "Wave " .. tostring(status.analysis.wave) .. " failed: " .. failed .. clusters_ready(status, "; ")
  else
    hs.message = says(condition(status, "Ready"), "The rollout failed") .. clusters_ready(status, "; ")
  end
elseif phase == "RolledBack" then
  local alert = ""
  local last = nil
  if status.rollbacks ~= nil then
    last = status.rollbacks[1]
  end
  local failed = failed_check(status)
  if last ~= nil and failed ~= nil and status.analysis.revision == last.fromRevision then
    alert = " after " .. failed
  elseif last ~= nil and last.alert ~= nil then
    alert = " after alert " .. last.alert
  end
  hs.status = "Degraded"
  hs.message = version_of(status.desiredRevision, "The new revision") .. " rolled back to "
      .. version_of(status.currentRevision, "the last known-good revision")
      .. alert .. ": " .. ready_message(status, "it needs a new approval to return")
else
  hs = unexpected_phase(phase)
end
return hs
