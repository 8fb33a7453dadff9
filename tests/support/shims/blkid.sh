
tag= output=full devices= by_uuid=
while [ $# -gt 0 ]; do
    case "$1" in
        -s | --match-tag) shift; tag=${1:-} ;;
        -o | --output) shift; output=${1:-} ;;
        -U | --uuid) shift; by_uuid=${1:-} ;;
        -*) ;;
        *) devices="$devices $1" ;;
    esac
    shift
done
if [ -n "$by_uuid" ]; then
    resolve_device "UUID=$by_uuid" || exit 2
    exit 0
fi
if [ -z "$devices" ]; then
    for f in "$STATE"/disks/*; do [ -s "$f" ] && devices="$devices /dev/$(basename "$f")"; done
fi
rc=2
for device in $devices; do
    fs=$(fs_of "$device")
    [ -n "$fs" ] || continue
    rc=0
    uuid=$(uuid_of "$device")
    case "$output:$tag" in
        value:UUID) echo "$uuid" ;;
        value:TYPE) echo "$fs" ;;
        value:*) echo "$uuid"; echo "$fs" ;;
        export:*) printf 'DEVNAME=%s\nUUID=%s\nBLOCK_SIZE=4096\nTYPE=%s\n' "$device" "$uuid" "$fs" ;;
        *:UUID) echo "$device: UUID=\"$uuid\"" ;;
        *:TYPE) echo "$device: TYPE=\"$fs\"" ;;
        *) echo "$device: UUID=\"$uuid\" BLOCK_SIZE=\"4096\" TYPE=\"$fs\"" ;;
    esac
done
exit $rc
