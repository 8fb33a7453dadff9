
quiet=0 now=0 value=0 props= verb= units=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift
            for unit in "$@"; do
                if [ -z "$verb" ]; then verb=$unit; else units="$units $unit"; fi
            done
            break ;;
        --version) echo "systemd 252 (252.39-1~deb12u2)"; exit 0 ;;
        -q | --quiet) quiet=1 ;;
        --now) now=1 ;;
        --value) value=1 ;;
        -p | --property) shift; props="$props ${1:-}" ;;
        --property=*) props="$props ${1#--property=}" ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$1; else units="$units $1"; fi ;;
    esac
    shift
done
props=$(printf '%s' "$props" | tr ',' ' ')

unit_name() { case "$1" in *.*) echo "$1" ;; *) echo "$1.service" ;; esac; }
# A unit is known from its state, or from a unit file a playbook wrote (inactive, disabled).
known() { [ -f "$STATE/units/$1" ] || [ -f "/etc/systemd/system/$1" ]; }
active_of() { if [ -f "$STATE/units/$1" ]; then cut -d' ' -f1 "$STATE/units/$1"; else echo inactive; fi; }
enabled_of() { if [ -f "$STATE/units/$1" ]; then cut -d' ' -f2 "$STATE/units/$1"; else echo disabled; fi; }
set_unit() { mkdir -p "$STATE/units" && echo "$2 $3" >"$STATE/units/$1"; }
say() { [ "$quiet" = 1 ] || printf '%s\n' "$*"; }
need_root() {
    if ! is_root; then
        echo "Failed to $verb $1: Access denied" >&2
        echo "See system logs and 'systemctl status $1' for details." >&2
        exit 1
    fi
}

case "$verb" in
    start | restart | reload | try-restart | reload-or-restart | stop)
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                if [ "$verb" = stop ]; then
                    echo "Failed to stop $u: Unit $u not loaded." >&2
                else
                    echo "Failed to $verb $u: Unit $u not found." >&2
                fi
                exit 5
            fi
            need_root "$u"
            if [ "$verb" = stop ]; then state=inactive; else state=active; fi
            # A kubelet that crashes on start stays in systemd's restart loop.
            if [ "$state" = active ] && [ "$u" = kubelet.service ] && failure=$(kubelet_start_failure); then
                state=activating
                journal kubelet.service "$failure"
            fi
            set_unit "$u" "$state" "$(enabled_of "$u")"
            record "systemctl $verb $u"
            unit_changed "$u"
        done
        ;;
    enable | disable)
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                echo "Failed to $verb unit: Unit file $u does not exist." >&2
                exit 1
            fi
            need_root "$u"
            active=$(active_of "$u")
            if [ "$verb" = enable ]; then
                echo "Created symlink /etc/systemd/system/multi-user.target.wants/$u → /lib/systemd/system/$u." >&2
                [ "$now" = 1 ] && active=active
                if [ "$now" = 1 ] && [ "$u" = kubelet.service ] && failure=$(kubelet_start_failure); then
                    active=activating
                    journal kubelet.service "$failure"
                fi
                set_unit "$u" "$active" enabled
            else
                echo "Removed \"/etc/systemd/system/multi-user.target.wants/$u\"." >&2
                [ "$now" = 1 ] && active=inactive
                set_unit "$u" "$active" disabled
            fi
            if [ "$now" = 1 ]; then
                record "systemctl $verb --now $u"
                unit_changed "$u"
            else
                record "systemctl $verb $u"
            fi
        done
        ;;
    is-active)
        rc=3
        for u in $units; do
            state=$(active_of "$(unit_name "$u")")
            say "$state"
            [ "$state" = active ] && rc=0
        done
        exit $rc
        ;;
    is-failed)
        rc=1
        for u in $units; do
            state=$(active_of "$(unit_name "$u")")
            say "$state"
            [ "$state" = failed ] && rc=0
        done
        exit $rc
        ;;
    is-enabled)
        rc=1
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                echo "Failed to get unit file state for $u: No such file or directory" >&2
                exit 1
            fi
            state=$(enabled_of "$u")
            say "$state"
            [ "$state" = enabled ] && rc=0
        done
        exit $rc
        ;;
    daemon-reload)
        if ! is_root; then
            echo "Failed to reload daemon: Access denied" >&2
            exit 1
        fi
        record "systemctl daemon-reload"
        ;;
    status)
        rc=0
        for u in $units; do
            u=$(unit_name "$u")
            if ! known "$u"; then
                echo "Unit $u could not be found." >&2
                exit 4
            fi
            active=$(active_of "$u")
            case "$active" in
                active) line="active (running)" ;;
                activating) line="activating (auto-restart) (Result: exit-code)"; rc=3 ;;
                failed) line="failed (Result: exit-code)"; rc=3 ;;
                *) line="inactive (dead)"; rc=3 ;;
            esac
            echo "● $u"
            echo "     Loaded: loaded (/lib/systemd/system/$u; $(enabled_of "$u"); preset: enabled)"
            echo "     Active: $line"
        done
        exit $rc
        ;;
    show)
        for u in $units; do
            u=$(unit_name "$u")
            if known "$u"; then load=loaded; file=$(enabled_of "$u"); else load=not-found; file=; fi
            active=$(active_of "$u")
            case "$active" in active) sub=running ;; activating) sub=auto-restart ;; failed) sub=failed ;; *) sub=dead ;; esac
            [ -n "$props" ] || props="Id LoadState ActiveState SubState UnitFileState"
            for p in $props; do
                case "$p" in
                    Id) v=$u ;;
                    LoadState) v=$load ;;
                    ActiveState) v=$active ;;
                    SubState) v=$sub ;;
                    UnitFileState) v=$file ;;
                    *) v= ;;
                esac
                if [ "$value" = 1 ]; then echo "$v"; else echo "$p=$v"; fi
            done
        done
        ;;
    "")
        echo "Missing command verb (this stand-in lists no units)." >&2
        exit 1
        ;;
    *)
        echo "Unknown command verb $verb." >&2
        exit 1
        ;;
esac
exit 0
