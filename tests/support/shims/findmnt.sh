
heading=1 columns=TARGET,SOURCE,FSTYPE,OPTIONS target=
while [ $# -gt 0 ]; do
    case "$1" in
        -n | --noheadings) heading=0 ;;
        -rn | -nr) heading=0 ;;
        -o | --output) shift; columns=${1:-} ;;
        --output=*) columns=${1#*=} ;;
        -no | -rno | -nro) heading=0; shift; columns=${1:-} ;;
        -T | --target | -M | --mountpoint | -S | --source) shift; target=${1:-} ;;
        -*) ;;
        *) target=$1 ;;
    esac
    shift
done
rows=$(awk -v t="$target" 't == "" || $1 == t || $2 == t' "$STATE/mounts" 2>/dev/null)
[ -n "$rows" ] || exit 1
if [ "$heading" = 1 ]; then echo "$columns" | tr ',' ' '; fi
printf '%s\n' "$rows" | while read -r device dir fs; do
    line=
    for column in $(echo "$columns" | tr ',' ' '); do
        case "$column" in
            TARGET) value=$dir ;;
            SOURCE) value=$device ;;
            FSTYPE) value=$fs ;;
            OPTIONS) value=rw,relatime ;;
            UUID) value=$(uuid_of "$device") ;;
            *) value= ;;
        esac
        line="$line${line:+ }$value"
    done
    echo "$line"
done
