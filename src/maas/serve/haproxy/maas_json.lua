-- A strict JSON decoder (RFC 8259) for the gateway's request checks; HAProxy ships no JSON
-- library. Arrays and objects carry metatables so that [] and {} stay distinguishable, null
-- decodes to json.null, and nesting deeper than max_depth is refused instead of recursing on.
local json = {}

json.null = setmetatable({}, { __tostring = function() return "null" end })
json.ARRAY = { __name = "array" }
json.OBJECT = { __name = "object" }

local ESCAPES = {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}
local LITERALS = { ["true"] = true, ["false"] = false }

local function fail(_, pos, what)
  error({ json = ("%s at byte %d"):format(what, pos) }, 0)
end

local function skip_space(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local decode_value

local function decode_string(text, pos)
  local parts, start = {}, pos + 1
  while true do
    local stop = text:find('["\\%c]', start)
    if stop == nil then
      fail(text, pos, "unterminated string")
    end
    parts[#parts + 1] = text:sub(start, stop - 1)
    local char = text:sub(stop, stop)
    if char == '"' then
      return table.concat(parts), stop + 1
    elseif char == "\\" then
      local kind = text:sub(stop + 1, stop + 1)
      if ESCAPES[kind] then
        parts[#parts + 1] = ESCAPES[kind]
        start = stop + 2
      elseif kind == "u" then
        local hex = text:sub(stop + 2, stop + 5)
        if not hex:find("^%x%x%x%x$") then
          fail(text, stop, "bad \\u escape")
        end
        local code = tonumber(hex, 16)
        start = stop + 6
        if code >= 0xD800 and code <= 0xDBFF then -- a surrogate pair
          local low = text:match("^\\u(%x%x%x%x)", start)
          local low_code = low and tonumber(low, 16)
          if not low_code or low_code < 0xDC00 or low_code > 0xDFFF then
            fail(text, stop, "unpaired surrogate")
          end
          code = 0x10000 + (code - 0xD800) * 0x400 + (low_code - 0xDC00)
          start = start + 6
        elseif code >= 0xDC00 and code <= 0xDFFF then
          fail(text, stop, "unpaired surrogate")
        end
        parts[#parts + 1] = utf8.char(code)
      else
        fail(text, stop, "bad escape")
      end
    else
      fail(text, stop, "control character in string")
    end
  end
end

local function decode_number(text, pos)
  local stop = pos
  stop = text:match("^-()", stop) or stop
  stop = text:match("^0()", stop) or text:match("^[1-9]%d*()", stop)
  if stop == nil then
    fail(text, pos, "bad number")
  end
  stop = text:match("^%.%d+()", stop) or stop
  stop = text:match("^[eE][-+]?%d+()", stop) or stop
  local literal = text:sub(pos, stop - 1)
  local value = math.tointeger(tonumber(literal)) or tonumber(literal)
  if value == nil or value == math.huge or value == -math.huge then
    fail(text, pos, "number out of range")
  end
  return value, stop
end

local function decode_array(text, pos, depth, max_depth)
  local array, index = setmetatable({}, json.ARRAY), 0
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "]" then
    return array, pos + 1
  end
  while true do
    local value
    value, pos = decode_value(text, pos, depth + 1, max_depth)
    index = index + 1
    array[index] = value
    pos = skip_space(text, pos)
    local char = text:sub(pos, pos)
    if char == "]" then
      return array, pos + 1
    elseif char ~= "," then
      fail(text, pos, "expected ',' or ']'")
    end
    pos = skip_space(text, pos + 1)
  end
end

local function decode_object(text, pos, depth, max_depth)
  local object = setmetatable({}, json.OBJECT)
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "}" then
    return object, pos + 1
  end
  while true do
    if text:sub(pos, pos) ~= '"' then
      fail(text, pos, "expected a string key")
    end
    local key
    key, pos = decode_string(text, pos)
    pos = skip_space(text, pos)
    if text:sub(pos, pos) ~= ":" then
      fail(text, pos, "expected ':'")
    end
    pos = skip_space(text, pos + 1)
    object[key], pos = decode_value(text, pos, depth + 1, max_depth)
    pos = skip_space(text, pos)
    local char = text:sub(pos, pos)
    if char == "}" then
      return object, pos + 1
    elseif char ~= "," then
      fail(text, pos, "expected ',' or '}'")
    end
    pos = skip_space(text, pos + 1)
  end
end

decode_value = function(text, pos, depth, max_depth)
  if depth > max_depth then
    fail(text, pos, "nested deeper than " .. max_depth)
  end
  local char = text:sub(pos, pos)
  if char == "{" then
    return decode_object(text, pos, depth, max_depth)
  elseif char == "[" then
    return decode_array(text, pos, depth, max_depth)
  elseif char == '"' then
    return decode_string(text, pos)
  elseif char == "-" or char:find("%d") then
    return decode_number(text, pos)
  end
  for word, value in pairs(LITERALS) do
    if text:sub(pos, pos + #word - 1) == word then
      return value, pos + #word
    end
  end
  if text:sub(pos, pos + 3) == "null" then
    return json.null, pos + 4
  end
  fail(text, pos, char == "" and "unexpected end" or "unexpected character")
end

-- The decoded value, or nil and what was wrong.
function json.decode(text, max_depth)
  local ok, value, pos = pcall(function()
    local start = skip_space(text, 1)
    local decoded, stop = decode_value(text, start, 1, max_depth or 64)
    return decoded, skip_space(text, stop)
  end)
  if not ok then
    return nil, type(value) == "table" and value.json or tostring(value)
  end
  if pos <= #text then
    return nil, ("trailing data at byte %d"):format(pos)
  end
  return value
end

function json.is_array(value)
  return getmetatable(value) == json.ARRAY
end

function json.is_object(value)
  return getmetatable(value) == json.OBJECT
end

local function encode_string(text)
  return '"' .. text:gsub('[%c"\\]', function(char)
    return ("\\u%04x"):format(char:byte())
  end) .. '"'
end

-- Only what the gateway writes: an object of string values.
function json.encode_error(message)
  return '{"error":' .. encode_string(message) .. "}"
end

return json
