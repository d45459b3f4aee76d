# pinhole A/B slot selector for U-Boot, shared by the U-Boot boards (qemu-arm64,
# rpi3). Compiled to boot.scr by image/build; lives on partition 1 (bootsel)
# with two small text files:
#   slot.txt     "boot_slot=a" or "boot_slot=b": the committed slot
#   tryboot.txt  "try_slot=b": boot that slot ONCE (written by the OTA code
#                before rebooting). This script consumes the request before
#                booting (rewrites the file as "tried_slot=b"), so a hang,
#                panic or watchdog reset of the trial boots the committed slot.
# The kernel command line gets pinhole.slot=<a|b> pinhole.trial=<0|1>.
# Same semantics as the Raspberry Pi's autoboot.txt + tryboot. No U-Boot
# environment storage is used. See docs/boot-qemu.md.

setenv boot_slot a
setenv try_slot
setenv trial 0
setenv tmp_addr ${kernel_addr_r}
if load ${devtype} ${devnum}:${distro_bootpart} ${tmp_addr} slot.txt; then
    env import -t ${tmp_addr} ${filesize} boot_slot
fi
setenv committed_slot ${boot_slot}
if load ${devtype} ${devnum}:${distro_bootpart} ${tmp_addr} tryboot.txt; then
    env import -t ${tmp_addr} ${filesize} try_slot
fi
if test "${try_slot}" = "a" || test "${try_slot}" = "b"; then
    setenv tried_slot ${try_slot}
    env export -t ${tmp_addr} tried_slot
    if fatwrite ${devtype} ${devnum}:${distro_bootpart} ${tmp_addr} tryboot.txt ${filesize}; then
        setenv boot_slot ${try_slot}
        setenv trial 1
    else
        echo "pinhole: cannot consume tryboot.txt; ignoring the trial request"
    fi
fi

# slot -> boot partition (2 = boot_a, 3 = boot_b); each holds Image,
# initrd.img and cmdline.env ("bootargs=... root=PARTUUID=<its root>").
setenv pinhole_load 'if test "${boot_slot}" = "b"; then setenv bootpart 3; else setenv boot_slot a; setenv bootpart 2; fi; echo "pinhole: slot ${boot_slot} (trial ${trial}) from partition ${bootpart}"; setenv bootargs; load ${devtype} ${devnum}:${bootpart} ${tmp_addr} cmdline.env && env import -t ${tmp_addr} ${filesize} bootargs && load ${devtype} ${devnum}:${bootpart} ${ramdisk_addr_r} initrd.img && setenv rd_size ${filesize} && load ${devtype} ${devnum}:${bootpart} ${kernel_addr_r} Image && setenv bootargs "${bootargs} pinhole.slot=${boot_slot} pinhole.trial=${trial}" && booti ${kernel_addr_r} ${ramdisk_addr_r}:${rd_size} ${fdt_addr}'
run pinhole_load
if test "${boot_slot}" != "${committed_slot}"; then
    echo "pinhole: slot ${boot_slot} did not boot; falling back to ${committed_slot}"
    setenv boot_slot ${committed_slot}
    setenv trial 0
    run pinhole_load
fi
echo "pinhole: no bootable slot"
