
only_on apt
verb=${1:-}
[ $# -gt 0 ] && shift
[ "${1:-}" = -- ] && shift
case "$verb" in
    madison)
        for name in "$@"; do
            in_repo "$name" || { echo "N: Unable to locate package $name" >&2; continue; }
            sort -rV "$REPO/$name" | while read -r version; do
                printf '%10s | %s | https://pkgs.k8s.io/core:/stable:/deb  Packages\n' "$name" "$version"
            done
        done
        ;;
    policy)
        for name in "$@"; do
            in_repo "$name" || { echo "N: Unable to locate package $name" >&2; continue; }
            echo "$name:"
            echo "  Installed: $(installed_version "$name" || true)" | sed 's/Installed: $/Installed: (none)/'
            echo "  Candidate: $(latest_version "$name")"
            echo "  Version table:"
            sort -rV "$REPO/$name" | while read -r version; do
                echo "     $version 500"
                echo "        500 https://pkgs.k8s.io/core:/stable:/deb  Packages"
            done
        done
        ;;
    show)
        found=0
        for name in "$@"; do
            in_repo "$name" || continue
            found=1
            sort -rV "$REPO/$name" | while read -r version; do
                printf 'Package: %s\nVersion: %s\nArchitecture: %s\n\n' "$name" "$version" "$ARCH"
            done
        done
        if [ "$found" = 0 ]; then
            echo "E: No packages found" >&2
            exit 100
        fi
        ;;
    *)
        echo "E: Invalid operation $verb" >&2
        exit 100
        ;;
esac
exit 0
