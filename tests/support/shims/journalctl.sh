
unit= lines=
while [ $# -gt 0 ]; do
    case "$1" in
        -u | --unit) shift; unit=${1:-} ;;
        --unit=*) unit=${1#*=} ;;
        -n | --lines) shift; lines=${1:-} ;;
        --lines=*) lines=${1#*=} ;;
    esac
    shift
done
case "$unit" in *.*) ;; "") ;; *) unit=$unit.service ;; esac
file="$NODE_DIR/journal/$unit"
if [ -z "$unit" ] || [ ! -f "$file" ]; then
    echo "-- No entries --"
    exit 0
fi
if [ -n "$lines" ]; then tail -n "$lines" "$file"; else cat "$file"; fi
