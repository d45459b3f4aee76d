#!/bin/busybox sh
# PID 1 of the vivid initramfs (tests/qemu/vivid/run.sh).
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
ip link set lo up
load() { for m in $(cat /modules.order); do insmod /lib/modules/$m $( [ $m = vivid.ko ] && echo node_types=0x1 ); done; }
load
sleep 1
echo "INFO nodes: $(ls /dev/video* 2>&1)"
# (busybox 1.35 wget -T crashes: use timeout instead)
api() { timeout 10 wget -q -O - http://127.0.0.1:8080/api/status 2>/dev/null; }
field() { api | tr ',' '\n' | grep "\"$1\"" | head -1; }
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fi; }
wait_for() { i=0; while [ $i -lt $2 ]; do eval "$1" && return 0; sleep 1; i=$((i+1)); done; return 1; }
frames() { api | tr ',' '\n' | grep '^"frames"' | cut -d: -f2; }

/pinholed --source auto --listen 127.0.0.1:8080 --width 640 --height 480 --fps 15 \
    --keyframe-interval 15 >/tmp/pinholed.log 2>&1 &
pid=$!
wait_for 'api | grep -q "\"state\":\"running\""' 90
echo "STATUS $(api | head -c 700)"
check "auto picked vivid and runs" 'api | grep -q "\"kind\":\"v4l2\"" && api | grep -q "\"state\":\"running\""'
wget -q -O /tmp/live.mp4 http://127.0.0.1:8080/stream.mp4 & viewer=$!
sleep 6
check "a viewer receives fMP4/H.264" '[ $(wc -c < /tmp/live.mp4) -gt 20000 ] && grep -q avc1 /tmp/live.mp4'
wget -q -O /tmp/snap.jpg http://127.0.0.1:8080/snapshot.jpg
check "snapshot" '[ $(wc -c < /tmp/snap.jpg) -gt 1000 ]'

# Unplug with the viewer connected: unbind the platform device.
echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
wait_for 'api | grep -q "\"state\":\"failed\""' 20
echo "STATUS $(field error)"
check "unplug reported, daemon up" 'kill -0 $pid && api | grep -q "\"state\":\"failed\""'
sleep 3
echo vivid.0 > /sys/bus/platform/drivers/vivid/bind
f0=$(frames)
wait_for '[ "$(frames)" -gt "$((f0 + 15))" ] && api | grep -q "\"state\":\"running\""' 30
check "video resumes after replug" 'api | grep -q "\"state\":\"running\"" && [ "$(frames)" -gt "$((f0 + 15))" ]'

# The module itself: rmmod (the daemon has closed the dead fd) and back.
wait_for 'echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind 2>/dev/null; rmmod vivid 2>/dev/null' 20
echo "INFO after rmmod: $(ls /dev/video* 2>&1)"
sleep 3
echo "STATUS $(field error)"
insmod /lib/modules/vivid.ko node_types=0x1
f0=$(frames)
wait_for '[ "$(frames)" -gt "$((f0 + 15))" ]' 30
check "video resumes after rmmod + modprobe vivid" 'kill -0 $pid && [ "$(frames)" -gt "$((f0 + 15))" ]'
kill $viewer 2>/dev/null
echo "INFO viewer got $(wc -c < /tmp/live.mp4) bytes in total"
echo "INFO daemon log tail:"; tail -n 12 /tmp/pinholed.log | cut -c1-220
poweroff -f
