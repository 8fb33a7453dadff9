
disk_file() { printf '%s/disks/%s' "$STATE" "$(basename "$1")"; }
known_disk() { [ -f "$(disk_file "$1")" ]; }
fs_of() { cut -d' ' -f1 "$(disk_file "$1")" 2>/dev/null; }
uuid_of() { cut -d' ' -f2 "$(disk_file "$1")" 2>/dev/null; }
# A device named as /dev/x, UUID=... or LABEL-less path, resolved to /dev/x.
resolve_device() {
    case "$1" in
        UUID=*) for f in "$STATE"/disks/*; do
                    [ -f "$f" ] || continue
                    [ "$(cut -d' ' -f2 "$f")" = "${1#UUID=}" ] && { echo "/dev/$(basename "$f")"; return 0; }
                done
                return 1 ;;
        *) echo "$1" ;;
    esac
}
mounted_at() { awk -v dir="$1" '$2 == dir { print; found = 1 } END { exit !found }' "$STATE/mounts" 2>/dev/null; }
device_mounted() { awk -v dev="$1" '$1 == dev { found = 1 } END { exit !found }' "$STATE/mounts" 2>/dev/null; }
