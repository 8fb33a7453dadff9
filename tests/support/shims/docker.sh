
version=$(runtime_version docker | sed 's|.*://||')
if [ -z "$version" ]; then
    echo "bash: line 1: docker: command not found" >&2
    exit 127
fi
containers="$STATE/containers/docker"
if [ "$(unit_active_state docker.service)" != active ]; then
    echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
    exit 1
fi
verb=${1:-}
[ $# -gt 0 ] && shift
require_ids() {
    if [ $# -eq 0 ]; then
        echo "\"docker $verb\" requires at least 1 argument." >&2
        echo "See 'docker $verb --help'." >&2
        exit 1
    fi
}
case "$verb" in
    ps)
        all=0 quiet=0
        for a in "$@"; do
            case "$a" in
                -a | --all) all=1 ;; -q | --quiet) quiet=1 ;; -aq | -qa) all=1 quiet=1 ;;
            esac
        done
        [ "$quiet" = 1 ] || echo "CONTAINER ID   IMAGE     COMMAND   CREATED       STATUS       PORTS     NAMES"
        [ -f "$containers" ] || exit 0
        awk -v all="$all" -v quiet="$quiet" '
            all == 1 || $2 == "running" {
                if (quiet == 1) print substr($1, 1, 12)
                else printf "%-14s k8s       \"/pause\"  1 hour ago    %-12s           %s\n", substr($1, 1, 12), ($2 == "running" ? "Up 1 hour" : "Exited (0)"), $3
            }' "$containers"
        ;;
    stop | rm | kill)
        force=0 ids=
        for a in "$@"; do
            case "$a" in -f | --force) force=1 ;; -*) ;; *) ids="$ids $a" ;; esac
        done
        # shellcheck disable=SC2086
        require_ids $ids
        is_root || { echo "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock" >&2; exit 1; }
        rc=0
        for id in $ids; do
            line=$(grep "^$id" "$containers" 2>/dev/null | head -n 1)
            if [ -z "$line" ]; then
                echo "Error response from daemon: No such container: $id" >&2
                rc=1
                continue
            fi
            full=${line%% *}
            if [ "$verb" = rm ]; then
                if [ "$force" = 0 ] && [ "$(echo "$line" | cut -d' ' -f2)" = running ]; then
                    echo "Error response from daemon: You cannot remove a running container $full. Stop the container before attempting removal or force remove" >&2
                    rc=1
                    continue
                fi
                grep -v "^$full " "$containers" >"$containers.new"; mv "$containers.new" "$containers"
            else
                sed -i "s/^$full running /$full exited /" "$containers"
            fi
            echo "$id"
        done
        record "docker $verb$ids"
        exit $rc
        ;;
    info)
        driver=cgroupfs
        grep -q 'native.cgroupdriver=systemd' /etc/docker/daemon.json 2>/dev/null && driver=systemd
        running=$(awk '$2 == "running"' "$containers" 2>/dev/null | wc -l)
        total=$(wc -l <"$containers" 2>/dev/null || echo 0)
        case "$*" in
            *--format* | *-f*)
                format=$(printf '%s\n' "$@" | sed -n '/^--format=/s/^--format=//p; /^-f$/{n;p}; /^--format$/{n;p}')
                printf '%s\n' "$format" | sed -e "s/{{ *\.CgroupDriver *}}/$driver/g" -e "s/{{ *\.ServerVersion *}}/$version/g" \
                    -e "s/{{ *\.Driver *}}/devicemapper/g" -e "s/{{ *\.ContainersRunning *}}/$running/g" -e "s/{{ *\.Containers *}}/$total/g"
                ;;
            *)
                printf 'Client:\n Context:    default\n Debug Mode: false\n\nServer:\n Containers: %s\n  Running: %s\n  Paused: 0\n  Stopped: %s\n' "$total" "$running" "$((total - running))"
                printf ' Server Version: %s\n Storage Driver: devicemapper\n Logging Driver: json-file\n Cgroup Driver: %s\n Cgroup Version: 1\n Docker Root Dir: /var/lib/docker\n' "$version" "$driver"
                ;;
        esac
        ;;
    version)
        printf 'Client: Docker Engine - Community\n Version:           %s\n\nServer: Docker Engine - Community\n Engine:\n  Version:          %s\n' "$version" "$version"
        ;;
    *)
        echo "docker stand-in: unsupported command ${verb:-(none)}" >&2
        exit 1
        ;;
esac
exit 0
