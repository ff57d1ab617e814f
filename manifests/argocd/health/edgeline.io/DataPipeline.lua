-- Argo CD health of an Edgeline DataPipeline (edgeline.io/v1alpha1).
-- The phase is the outcome of the newest run: a failed run is Degraded until a later
-- run succeeds; a pipeline whose schedule is suspended is Suspended.

-- status.runs is newest first.
local function newest_run(status)
  if status.runs ~= nil then
    return status.runs[1]
  end
  return nil
end

-- ": step train running", or ": step collect waiting: <why>" for the first step still open.
local function open_step(run)
  if run.steps ~= nil then
    for _, step in ipairs(run.steps) do
      if step.phase == "Running" then
        return ": step " .. step.name .. " running"
      end
      if step.phase == "Waiting" then
        local why = ""
        if step.message ~= nil then
          why = ": " .. step.message
        end
        return ": step " .. step.name .. " waiting" .. why
      end
    end
  end
  return ""
end

local function schedule_suspended()
  return obj.spec ~= nil and obj.spec.schedule ~= nil and obj.spec.schedule.suspend == true
end

local early = not_observed("Waiting for the Edgeline operator to check the pipeline")
if early ~= nil then
  return early
end

local status = obj.status
local phase = status.phase
local run = newest_run(status)
if phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = says(condition(status, "Ready"), "The pipeline is invalid")
elseif phase == "Failed" then
  hs.status = "Degraded"
  if run ~= nil and run.phase == "Failed" then
    local why = ""
    if run.reason ~= nil then
      why = ": " .. run.reason
      if run.message ~= nil and run.message ~= "" then
        why = why .. ": " .. run.message
      end
    end
    hs.message = "Run " .. run.name .. " failed" .. why
  else
    hs.message = says(condition(status, "Ready"), "The last run failed")
  end
elseif phase == "Running" then
  hs.status = "Progressing"
  if run ~= nil then
    local trigger = ""
    if run.trigger ~= nil then
      trigger = " (trigger: " .. run.trigger .. ")"
    end
    hs.message = "Run " .. run.name .. trigger .. open_step(run)
  else
    hs.message = "A run is starting"
  end
elseif schedule_suspended() then
  local last = ""
  if run ~= nil then
    last = "; run " .. run.name .. " ended " .. run.phase
  end
  hs.status = "Suspended"
  hs.message = "Scheduled runs are suspended" .. last
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  if run ~= nil then
    local produced = ""
    if run.producedModel ~= nil then
      produced = "; it produced MLModel " .. run.producedModel
    end
    hs.message = "Run " .. run.name .. " succeeded" .. produced
  else
    hs.message = "The last run succeeded"
  end
elseif phase == "Idle" then
  hs.status = "Healthy"
  local last = "No run yet"
  if run ~= nil then
    last = "Run " .. run.name .. " ended " .. run.phase
  end
  if status.nextRunTime ~= nil then
    hs.message = last .. "; the next run starts at " .. status.nextRunTime
  else
    hs.message = last .. "; runs start on request or on an alert"
  end
else
  hs = unexpected_phase(phase)
end
return hs
