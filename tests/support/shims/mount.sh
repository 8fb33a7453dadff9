
all=0 positional=
while [ $# -gt 0 ]; do
    case "$1" in
        -a | --all) all=1 ;;
        -t | --types | -o | --options) shift ;;
        -*) ;;
        *) positional="$positional $1" ;;
    esac
    shift
done
list() {
    [ -f "$STATE/mounts" ] && awk '{ printf "%s on %s type %s (rw,relatime)\n", $1, $2, $3 }' "$STATE/mounts"
    return 0
}
mount_one() {
    device=$(resolve_device "$1") || { echo "mount: $2: can't find $1." >&2; exit 32; }
    if ! known_disk "$device"; then
        echo "mount: $2: special device $1 does not exist." >&2
        exit 32
    fi
    if [ ! -d "$2" ]; then
        echo "mount: $2: mount point does not exist." >&2
        exit 32
    fi
    fs=$(fs_of "$device")
    if [ -z "$fs" ]; then
        echo "mount: $2: wrong fs type, bad option, bad superblock on $device, missing codepage or helper program, or other error." >&2
        exit 32
    fi
    if mounted_at "$2" >/dev/null; then
        echo "mount: $2: $device already mounted on $2." >&2
        exit 32
    fi
    echo "$device $2 $fs" >>"$STATE/mounts"
    record "mount $device $2"
}
# fstab lines for disks this node has; every other line is the machine's and already mounted.
fstab_entries() {
    grep -v '^[[:space:]]*#' /etc/fstab 2>/dev/null | while read -r spec dir _; do
        [ -n "$spec" ] || continue
        device=$(resolve_device "$spec") || continue
        known_disk "$device" && echo "$spec $dir"
    done
}
set -- $positional
if [ "$all" = 0 ] && [ $# -eq 0 ]; then
    list
    exit 0
fi
if ! is_root; then
    echo "mount: only root can do that." >&2
    exit 1
fi
if [ "$all" = 1 ]; then
    fstab_entries | while read -r spec dir; do
        mounted_at "$dir" >/dev/null || mount_one "$spec" "$dir"
    done
    exit 0
fi
if [ $# -eq 1 ]; then
    entry=$(fstab_entries | awk -v x="$1" '$1 == x || $2 == x { print; exit }')
    if [ -z "$entry" ]; then
        echo "mount: $1: can't find in /etc/fstab." >&2
        exit 1
    fi
    set -- $entry
fi
mount_one "$1" "$2"
