
target=
for a in "$@"; do case "$a" in -*) ;; *) target=$a ;; esac; done
if ! is_root; then
    echo "umount: $target: must be superuser to unmount." >&2
    exit 32
fi
if ! awk -v t="$target" '$1 == t || $2 == t { found = 1 } END { exit !found }' "$STATE/mounts" 2>/dev/null; then
    echo "umount: $target: not mounted." >&2
    exit 32
fi
awk -v t="$target" '$1 != t && $2 != t' "$STATE/mounts" >"$STATE/mounts.new"
mv "$STATE/mounts.new" "$STATE/mounts"
record "umount $target"
