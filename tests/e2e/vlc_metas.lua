-- A VLC interface that prints every playlist item (name, URI, metadata) once
-- the playlist files given on the command line are read, then quits VLC.
local function walk(node)
  if node.children then
    for _, child in ipairs(node.children) do walk(child) end
  elseif node.item then
    local line = "ITEM\t" .. node.name .. "\turi=" .. node.item:uri()
    for key, value in pairs(node.item:metas()) do
      line = line .. "\t" .. key .. "=" .. value
    end
    print(line)
  end
end

-- VLC expands an M3U into its items when it starts playing it.
local deadline = vlc.misc.mdate() + 10000000
while vlc.misc.mdate() < deadline do
  local root = vlc.playlist.get("playlist", false)
  if root.children and #root.children > 1 then break end
  vlc.misc.mwait(vlc.misc.mdate() + 100000)
end
walk(vlc.playlist.get("playlist", false))
print("END")
vlc.misc.quit()
