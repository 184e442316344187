-- Test service: decodes the request body with the gateway's JSON decoder and answers with a
-- canonical description of the value (or the error), so tests can check it through HAProxy.
local json = require("maas_json")

local function describe(value)
  if value == json.null then
    return "null"
  elseif json.is_array(value) then
    local parts = {}
    for index = 1, #value do
      parts[index] = describe(value[index])
    end
    return "[" .. table.concat(parts, ",") .. "]"
  elseif json.is_object(value) then
    local keys = {}
    for key in pairs(value) do
      keys[#keys + 1] = key
    end
    table.sort(keys)
    local parts = {}
    for index, key in ipairs(keys) do
      parts[index] = ("%q:%s"):format(key, describe(value[key]))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(value) == "string" then
    return ("%q"):format(value)
  elseif math.type(value) == "integer" then
    return "int:" .. tostring(value)
  elseif type(value) == "number" then
    return "float:" .. ("%.17g"):format(value)
  end
  return tostring(value)
end

core.register_service("json_probe", "http", function(applet)
  local body = applet:receive() or ""
  local value, problem = json.decode(body, 4)
  local answer = value ~= nil and ("ok " .. describe(value)) or ("error " .. problem)
  applet:set_status(200)
  applet:add_header("content-type", "text/plain")
  applet:add_header("content-length", tostring(#answer))
  applet:start_response()
  applet:send(answer)
end)
