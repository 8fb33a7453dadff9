
only_on apt
verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
    hold | unhold)
        if ! is_root; then
            echo "E: Could not create temporary file for /var/lib/apt/extended_states - mkstemp (13: Permission denied)" >&2
            exit 100
        fi
        for name in "$@"; do
            if [ -z "$(installed_version "$name")" ] && ! in_repo "$name"; then
                echo "E: Unable to locate package $name" >&2
                exit 100
            fi
            if [ "$verb" = hold ]; then
                mkdir -p "$STATE/held" && : >"$STATE/held/$name"
                echo "$name set on hold."
            else
                rm -f "$STATE/held/$name"
                echo "Canceled hold on $name."
            fi
            record "apt-mark $verb $name"
        done
        ;;
    showhold)
        ls "$STATE/held" 2>/dev/null | sort
        ;;
    *)
        echo "E: Invalid operation $verb" >&2
        exit 100
        ;;
esac
