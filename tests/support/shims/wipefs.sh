
all=0 device=
for a in "$@"; do case "$a" in -a | --all) all=1 ;; -*) ;; *) device=$a ;; esac; done
is_root || { echo "wipefs: error: $device: probing initialization failed: Permission denied" >&2; exit 1; }
known_disk "$device" || { echo "wipefs: error: $device: probing initialization failed: No such file or directory" >&2; exit 1; }
current=$(fs_of "$device")
if [ "$all" = 1 ] && [ -n "$current" ]; then
    echo "$device: 2 bytes were erased at offset 0x00000438 ($current): 53 ef"
    : >"$(disk_file "$device")"
    record "wipefs -a $device"
elif [ -n "$current" ]; then
    echo "DEVICE OFFSET TYPE UUID LABEL"
    echo "$(basename "$device") 0x438 $current $(uuid_of "$device")"
fi
