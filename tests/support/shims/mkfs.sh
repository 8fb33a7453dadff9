
force=0 device=
while [ $# -gt 0 ]; do
    case "$1" in
        -F | -f) force=1 ;;
        -L | -t | -b | -m | -E | -O | -n | -i) shift ;;
        -*) ;;
        *) device=$1 ;;
    esac
    shift
done
fstype=${TOOL#mkfs.}
if [ -z "$device" ]; then
    echo "Usage: $TOOL [options] device" >&2
    exit 1
fi
if ! is_root; then
    echo "$TOOL: Permission denied while trying to determine filesystem size" >&2
    exit 1
fi
if ! known_disk "$device"; then
    echo "The file $device does not exist and no size was specified." >&2
    exit 1
fi
if device_mounted "$device"; then
    echo "$device is mounted; will not make a filesystem here!" >&2
    exit 1
fi
current=$(fs_of "$device")
if [ -n "$current" ] && [ "$force" = 0 ]; then
    if [ "$fstype" = xfs ]; then
        echo "mkfs.xfs: $device appears to contain an existing filesystem ($current)." >&2
        echo "mkfs.xfs: Use the -f option to force overwrite." >&2
    else
        echo "$device contains a $current file system"
        echo "Proceed anyway? (y,N) "
    fi
    exit 1
fi
uuid=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$STATE/disks" && echo "$fstype $uuid" >"$(disk_file "$device")"
if [ "$fstype" = xfs ]; then
    echo "meta-data=$device              isize=512    agcount=4, agsize=6553600 blks"
else
    echo "mke2fs 1.47.0 (5-Feb-2023)"
    echo "Creating filesystem with 26214400 4k blocks and 6553600 inodes"
    echo "Filesystem UUID: $uuid"
    echo "Writing superblocks and filesystem accounting information: done"
fi
record "$TOOL $device"
