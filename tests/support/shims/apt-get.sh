
only_on apt
yes=0 downgrades=0 change_held=0 download_only=0 verb= args=
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift
            for arg in "$@"; do
                if [ -z "$verb" ]; then verb=$arg; else args="$args $arg"; fi
            done
            break ;;
        -y | --yes | --assume-yes | -qy | -yq) yes=1 ;;
        -d | --download-only) download_only=1 ;;
        --allow-downgrades) downgrades=1 ;;
        --allow-change-held-packages) change_held=1 ;;
        -o | --option | -c | --config-file | -t | --target-release) shift ;;
        -*) ;;
        *) if [ -z "$verb" ]; then verb=$1; else args="$args $1"; fi ;;
    esac
    shift
done
need_root() {
    if ! is_root; then
        echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
        echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?" >&2
        exit 100
    fi
}
case "$verb" in
    update)
        need_root
        echo "Hit:1 http://deb.debian.org/debian stable InRelease"
        echo "Reading package lists..."
        record "apt-get update"
        ;;
    install)
        need_root
        plan=
        for spec in $args; do
            name=${spec%%=*}
            if ! in_repo "$name"; then
                echo "Reading package lists..."
                echo "E: Unable to locate package $name" >&2
                exit 100
            fi
            case "$spec" in
                *=*) version=${spec#*=}
                    if ! repo_has "$name" "$version"; then
                        echo "Reading package lists..."
                        echo "E: Version '$version' for '$name' was not found" >&2
                        exit 100
                    fi ;;
                *) version=$(latest_version "$name") ;;
            esac
            current=$(installed_version "$name")
            [ "$current" = "$version" ] && continue
            if [ -f "$STATE/held/$name" ] && [ "$change_held" = 0 ]; then
                echo "E: Held packages were changed and -y was used without --allow-change-held-packages." >&2
                exit 100
            fi
            if [ -n "$current" ] && version_lt "$version" "$current" && [ "$downgrades" = 0 ]; then
                echo "E: Packages were downgraded and -y was used without --allow-downgrades." >&2
                exit 100
            fi
            plan="$plan $name=$version"
        done
        echo "Reading package lists..."
        echo "Building dependency tree..."
        if [ -z "$plan" ]; then
            for spec in $args; do
                name=${spec%%=*}
                echo "$name is already the newest version ($(installed_version "$name"))."
            done
            echo "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
            exit 0
        fi
        if [ "$yes" = 0 ]; then
            echo "Do you want to continue? [Y/n] Abort."
            exit 1
        fi
        if [ "$download_only" = 1 ]; then
            for item in $plan; do
                echo "Get:1 https://pkgs.k8s.io/core:/stable:/deb  ${item%%=*} ${item#*=} [9 MB]"
                mkdir -p "$STATE/cache" && touch "$STATE/cache/$item"
            done
            echo "Download complete and in download only mode"
            exit 0
        fi
        for item in $plan; do
            name=${item%%=*} version=${item#*=}
            echo "Setting up $name ($version) ..."
            set_installed "$name" "$version"
            record "apt-get install $name=$version"
        done
        ;;
    download)
        # Fetches .deb files into the working directory; needs no root, installs nothing.
        for spec in $args; do
            name=${spec%%=*}
            if ! in_repo "$name"; then
                echo "E: Unable to locate package $name" >&2
                exit 100
            fi
            case "$spec" in
                *=*) version=${spec#*=}
                    if ! repo_has "$name" "$version"; then
                        echo "E: Version '$version' for '$name' was not found" >&2
                        exit 100
                    fi ;;
                *) version=$(latest_version "$name") ;;
            esac
            deb_arch=$ARCH
            [ "$deb_arch" = x86_64 ] && deb_arch=amd64
            [ "$deb_arch" = aarch64 ] && deb_arch=arm64
            printf 'stand-in package %s %s\n' "$name" "$version" >"${name}_${version}_${deb_arch}.deb"
            echo "Get:1 https://pkgs.k8s.io/core:/stable:/deb  $name $version [9 MB]"
        done
        ;;
    remove | purge)
        need_root
        for name in $args; do
            if [ -n "$(installed_version "$name")" ]; then
                echo "Removing $name ($(installed_version "$name")) ..."
                remove_installed "$name"
                record "apt-get $verb $name"
            else
                echo "Package '$name' is not installed, so not removed"
            fi
        done
        ;;
    "")
        echo "E: No command given" >&2
        exit 100
        ;;
    *)
        echo "E: Invalid operation $verb" >&2
        exit 100
        ;;
esac
exit 0
