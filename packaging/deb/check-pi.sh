#!/bin/sh
# Check that the Raspberry Pi buses vendd needs (SPI0, I2C1, UART0) are enabled.
#
#   check-pi.sh CONFIG_TXT DEV_DIR [PINMAP]
#
# CONFIG_TXT  the firmware config: /boot/firmware/config.txt (Bookworm) or /boot/config.txt
# DEV_DIR     where the device nodes are: /dev (spidev0.0, i2c-1, serial0)
# PINMAP      optional pin map (hardware/pinmap-*.toml): its [buses] says which buses the
#             machine uses. Then a bus the map leaves off but config.txt turns on is reported
#             too (its pins are plain GPIO in that map). Without a pin map all three are wanted.
#
# Installed as /usr/share/vendd/check-pi.sh; the package's postinst runs it. It only reports:
# every finding is a plain line with its fix, and it always exits 0 (a non-Pi, a missing file
# or an odd config.txt never fails an install). config.txt's conditional sections ([pi4],
# [cm5], ...) are not evaluated: the last setting in the file wins.

CONFIG="${1:-}"
DEV="${2:-/dev}"
PINMAP="${3:-}"

say() { printf 'vendd: %s\n' "$*"; }

if [ -z "$CONFIG" ] || [ ! -f "$CONFIG" ]; then
    say "no firmware config at '${CONFIG}': not a Raspberry Pi? SPI/I2C/UART not checked"
    exit 0
fi

# The last value of each setting in config.txt: prints "spi=on i2c=off uart=on" etc.
# dtparam lines may hold several comma-separated parameters; a bare name means "on".
settings=$(awk '
    function onoff(v) {
        v = tolower(v)
        if (v == "" || v == "on" || v == "true" || v == "yes" || v == "1" || v == "okay") return "on"
        return "off"
    }
    {
        sub(/#.*/, ""); gsub(/[ \t\r]/, "")
        if ($0 == "" || $0 ~ /^\[/) next
        eq = index($0, "="); if (eq == 0) next
        key = tolower(substr($0, 1, eq - 1)); val = substr($0, eq + 1)
        if (key == "dtparam") {
            n = split(val, parts, ",")
            for (i = 1; i <= n; i++) {
                p = parts[i]; e = index(p, "=")
                name = (e ? substr(p, 1, e - 1) : p); v = (e ? substr(p, e + 1) : "")
                if (name == "spi") spi = onoff(v)
                else if (name == "i2c_arm" || name == "i2c") i2c = onoff(v)
                else if (name == "uart0") uart = onoff(v)          # Pi 5: GPIO 14/15 UART
            }
        } else if (key == "dtoverlay") {
            split(val, parts, ",")
            if (parts[1] ~ /^spi0-[0-9]cs$/) spi = "on"
        } else if (key == "enable_uart") {
            uart = (val == "1") ? "on" : "off"
        }
    }
    END {
        printf "spi=%s i2c=%s uart=%s\n", (spi ? spi : "off"), (i2c ? i2c : "off"), (uart ? uart : "off")
    }' "$CONFIG")

setting() { printf '%s\n' "$settings" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# Which buses the pin map uses ([buses] spi0/i2c1/uart0 = true); all of them without a map.
want_spi=on want_i2c=on want_uart=on
map_note=""
if [ -n "$PINMAP" ]; then
    if [ -f "$PINMAP" ]; then
        buses=$(awk '
            /^[ \t]*\[/ { inb = ($0 ~ /^[ \t]*\[buses\]/); next }
            inb {
                line = $0; sub(/#.*/, "", line); gsub(/[ \t]/, "", line)
                if (line ~ /^(spi0|i2c1|uart0)=true$/) { sub(/=true$/, "", line); print line }
            }' "$PINMAP")
        want_spi=off want_i2c=off want_uart=off
        for b in $buses; do
            case "$b" in
                spi0) want_spi=on ;;
                i2c1) want_i2c=on ;;
                uart0) want_uart=on ;;
            esac
        done
        map_note=" (pin map $(basename "$PINMAP"))"
    else
        say "pin map $PINMAP not found: checking that SPI, I2C and UART are all enabled"
    fi
fi

problems=0
# $1 label, $2 wanted, $3 set in config.txt, $4 device node, $5 config line, $6 enable fix,
# $7 disable fix
check() {
    label=$1 want=$2 have=$3 node="$DEV/$4" line=$5 fix_on=$6 fix_off=$7
    if [ "$want" = on ]; then
        if [ "$have" != on ]; then
            say "WARNING: $label is not enabled in $CONFIG, and vendd needs it$map_note."
            say "  fix: sudo raspi-config nonint $fix_on   (or add '$line' to $CONFIG), then reboot"
            problems=$((problems + 1))
        elif [ ! -e "$node" ]; then
            say "WARNING: '$line' is set but $node is missing: reboot to load the overlay."
            problems=$((problems + 1))
        else
            say "ok: $label enabled ($node)"
        fi
    elif [ "$have" = on ]; then
        say "WARNING: $label is enabled in $CONFIG, but the pin map uses its pins as GPIO$map_note."
        say "  fix: sudo raspi-config nonint $fix_off, then reboot"
        problems=$((problems + 1))
    else
        say "ok: $label off, as the pin map wants"
    fi
}

check "SPI (SPI0, PN532 reader)" "$want_spi" "$(setting spi)" spidev0.0 \
    "dtparam=spi=on" "do_spi 0" "do_spi 1"
check "I2C (I2C1)" "$want_i2c" "$(setting i2c)" i2c-1 \
    "dtparam=i2c_arm=on" "do_i2c 0" "do_i2c 1"
check "UART (UART0 on GPIO 14/15)" "$want_uart" "$(setting uart)" serial0 \
    "enable_uart=1" "do_serial_hw 0" "do_serial_hw 1"

# A login console on the UART would fight a PN532 (HSU) or the service port.
cmdline="$(dirname "$CONFIG")/cmdline.txt"
if [ "$want_uart" = on ] && [ -f "$cmdline" ] && grep -Eq 'console=(serial0|ttyAMA0|ttyS0)' "$cmdline"; then
    say "WARNING: $cmdline puts a login console on the UART."
    say "  fix: sudo raspi-config nonint do_serial_cons 1, then reboot"
    problems=$((problems + 1))
fi

if [ "$problems" -gt 0 ]; then
    say "$problems bus problem(s) above: fix them before the machine goes into service (hardware/README.md, 'Boot configuration')."
fi
exit 0
