#!/bin/bash
# Store layouts built as the real ones are (qemu-img for the disks, the
# configuration files in each project's documented format), each scanned on
# its own: every disk is recorded with the right format and recognition, its
# chain and the VM that uses it, and the orphans report names exactly the
# orphans planted.  Expectations are written by hand.
#   libvirt   directory pool + /etc/libvirt/qemu/*.xml (given with --vm-config)
#   nova      instances/<uuid>/{disk,disk.info,libvirt.xml} over _base/<hash>
#   proxmox   directory storage images/<vmid>/ + qemu-server/*.conf + storage.cfg
#   ovirt     file domain images/<img>/<vol> + <vol>.meta (FORMAT=RAW|COW, PUUID)
#   vmware    datastore: .vmx, descriptor + -flat extent, a -000001 delta snapshot
#   vbox      VirtualBox VM folder: .vbox (media registry), Snapshots/
. "$(dirname "$0")/lib.sh"
lib_workdir layouts
q() { command sqlite3 -separator ' ' "$1" "$2" | tr '\n' ';'; } # paths cut below the root below
# path format recognised_by, of the latest scan, paths below the layout's root
# (stored absolute: the root is $WORK/LAYOUT)
images() { q "$1/db.sqlite" "SELECT substr(f.path, length('$WORK/$1') + 2), i.format, i.recognised_by FROM images i JOIN files f ON f.id = i.file_id WHERE i.scan_id = (SELECT max(id) FROM scans) ORDER BY f.path"; }
# image -> its backing file (the resolved target), ok links only
chains() { q "$1/db.sqlite" "SELECT substr(f.path, length('$WORK/$1') + 2), substr(t.path, length('$WORK/$1') + 2) FROM links l JOIN images i ON i.id = l.image_id JOIN files f ON f.id = i.file_id JOIN files t ON t.id = l.target_file_id WHERE l.scan_id = (SELECT max(id) FROM scans) AND l.depth = 0 AND l.kind = 'backing' AND l.status = 'ok' ORDER BY f.path"; }
# VM target -> disk status and the file it resolves to
users() { q "$1/db.sqlite" "SELECT kind, vm, target, status, coalesce(substr((SELECT path FROM files WHERE id = file_id), length('$WORK/$1') + 2), '-') FROM v_vm_disks ORDER BY vm, target"; }
# the reclaimable orphans the report names, with their class
orphans() {
	"$IMGAUDIT" report --db "$1/db.sqlite" --section=orphans --format=json -o "$1/r.json" &&
		python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['orphans']; print(';'.join(o['name'][len(sys.argv[2])+1:] + ' ' + o['class'] for o in d['images'] if o['reclaimable']), d['count'])" "$1/r.json" "$WORK/$1"
}
scan() { d=$1; shift; "$IMGAUDIT" scan --db "$d/db.sqlite" --quiet "$@" "$d"; }

# ---- libvirt: a directory pool, domain XML in /etc/libvirt/qemu ----
L=libvirt
mkdir -p $L/images $L-etc/libvirt/qemu
qemu-img create -q -f qcow2 $L/images/golden.qcow2 64M
qemu-img create -q -f qcow2 $L/images/golden-old.qcow2 64M
qemu-img create -q -f qcow2 -b golden.qcow2 -F qcow2 $L/images/web.qcow2
qemu-img create -q -f qcow2 -b golden.qcow2 -F qcow2 $L/images/stale-clone.qcow2
qemu-img create -q -f qcow2 -b golden-old.qcow2 -F qcow2 $L/images/old-clone.qcow2
qemu-img create -q -f raw $L/images/db.img 32M
fallocate -l 8M $L/images/data-disk     # raw, no name glob, no signature: named by the VM
qemu-img create -q -f qcow2 $L/images/scratch.qcow2 16M
domain() { # name uuid disk...
	local n=$1 u=$2 t=a
	shift 2
	{
		echo "<domain type='kvm'>"
		echo "  <name>$n</name>"
		echo "  <uuid>$u</uuid>"
		echo "  <memory unit='KiB'>1048576</memory>"
		echo "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>"
		echo "  <devices>"
		for d in "$@"; do
			echo "    <disk type='file' device='disk'>"
			echo "      <driver name='qemu' type='${d##*:}'/>"
			echo "      <source file='$PWD/$L/images/${d%:*}'/>"
			echo "      <target dev='vd$t' bus='virtio'/>"
			echo "    </disk>"
			t=$(echo $t | tr a-y b-z)
		done
		echo "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda' bus='sata'/><readonly/></disk>"
		echo "    <disk type='network' device='disk'><source protocol='rbd' name='pool/vol'/><target dev='vdz' bus='virtio'/></disk>"
		echo "  </devices>"
		echo "</domain>"
	} >$L-etc/libvirt/qemu/$n.xml
}
domain web 6f1c7b52-0d55-4a4e-9a53-2f0e0f6a0001 web.qcow2:qcow2 db.img:raw data-disk:raw
domain gone 6f1c7b52-0d55-4a4e-9a53-2f0e0f6a0002 gone.qcow2:qcow2
scan $L --vm-config $L-etc/libvirt/qemu
# the old golden image loses its last clone: a base no image uses, known from history
rm $L/images/old-clone.qcow2
scan $L --vm-config $L-etc/libvirt/qemu
eq "libvirt: images" "$(images $L)" "images/data-disk raw vm-config;images/db.img raw vm-config;images/golden-old.qcow2 qcow2 content;images/golden.qcow2 qcow2 content;images/scratch.qcow2 qcow2 content;images/stale-clone.qcow2 qcow2 content;images/web.qcow2 qcow2 content;"
eq "libvirt: chains" "$(chains $L)" "images/stale-clone.qcow2 images/golden.qcow2;images/web.qcow2 images/golden.qcow2;"
eq "libvirt: users" "$(users $L)" "libvirt gone sda empty -;libvirt gone vda missing -;libvirt gone vdz network -;libvirt web sda empty -;libvirt web vda ok images/web.qcow2;libvirt web vdb ok images/db.img;libvirt web vdc ok images/data-disk;libvirt web vdz network -;"
eq "libvirt: missing disk finding" "$(q $L/db.sqlite "SELECT code FROM findings WHERE scan_id = 2 AND message LIKE '%''gone''%gone.qcow2%'")" "vm-disk-missing;"
eq "libvirt: orphans" "$(orphans $L)" "images/golden-old.qcow2 base;images/scratch.qcow2 standalone;images/stale-clone.qcow2 leaf 3"

# a definition met twice (in a ROOT and below a --vm-config DIR) is one VM
mkdir -p $L/etc && cp $L-etc/libvirt/qemu/web.xml $L/etc/ && cp -l $L/etc/web.xml $L-etc/web-link.xml 2>/dev/null || cp $L/etc/web.xml $L-etc/web-link.xml
scan $L --vm-config $L-etc
eq "libvirt: one VM per definition file" "$(q $L/db.sqlite "SELECT name, count(*) FROM vms WHERE scan_id = 3 GROUP BY name ORDER BY name")" "gone 1;web 2;"
rm -r $L/etc $L-etc/web-link.xml

# ---- Nova: instances/<uuid>/{disk,disk.info,libvirt.xml} over _base/ ----
N=nova
I1=3b0c6d1e-8f7a-4c2b-9d3e-5a6b7c8d9e01
B1=0a1b2c3d4e5f60718293a4b5c6d7e8f901234567
B2=fedcba9876543210fedcba9876543210fedcba98
mkdir -p $N/instances/_base $N/instances/$I1
qemu-img create -q -f raw $N/instances/_base/$B1 64M
qemu-io -f raw -c 'write -P 7 0 1M' $N/instances/_base/$B1 >/dev/null
qemu-img create -q -f raw $N/instances/_base/$B2 32M   # no instance uses it any more
qemu-img create -q -f qcow2 -b "$PWD/$N/instances/_base/$B1" -F raw $N/instances/$I1/disk
printf '{"%s": "qcow2"}' "$PWD/$N/instances/$I1/disk" >$N/instances/$I1/disk.info
cat >$N/instances/$I1/libvirt.xml <<XML
<domain type="kvm">
  <uuid>$I1</uuid>
  <name>instance-00000001</name>
  <metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>web-1</nova:name></nova:instance></metadata>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2" cache="none"/>
      <source file="$PWD/$N/instances/$I1/disk"/>
      <target bus="virtio" dev="vda"/>
    </disk>
  </devices>
</domain>
XML
scan $N
eq "nova: images" "$(images $N)" "instances/$I1/disk qcow2 content;instances/_base/$B1 raw layout;instances/_base/$B2 raw layout;"
eq "nova: chains" "$(chains $N)" "instances/$I1/disk instances/_base/$B1;"
eq "nova: users" "$(users $N)" "libvirt instance-00000001 vda ok instances/$I1/disk;"
eq "nova: orphans" "$(orphans $N)" "instances/_base/$B2 base 1"

# ---- Proxmox: directory storage images/<vmid>/, qemu-server/<vmid>.conf ----
P=proxmox
mkdir -p $P/var/lib/vz/images/100 $P/var/lib/vz/images/101 $P/var/lib/vz/images/102 \
	$P/var/lib/vz/images/103 $P/etc/pve/qemu-server
V=$P/var/lib/vz/images
qemu-img create -q -f qcow2 $V/100/vm-100-disk-0.qcow2 64M
qemu-img create -q -f raw $V/100/vm-100-disk-1.raw 16M
qemu-img create -q -f qcow2 $V/101/base-101-disk-0.qcow2 64M
qemu-img create -q -f qcow2 -b ../101/base-101-disk-0.qcow2 -F qcow2 $V/102/vm-102-disk-0.qcow2
qemu-img create -q -f raw $V/103/vm-103-disk-0.raw 8M # its VM was destroyed
cat >$P/etc/pve/storage.cfg <<CFG
dir: local
	path $PWD/$P/var/lib/vz
	content iso,vztmpl,backup,images

lvmthin: local-lvm
	thinpool data
	vgname pve
	content rootdir,images
CFG
cat >$P/etc/pve/qemu-server/100.conf <<CFG
boot: order=scsi0;net0
cores: 2
memory: 2048
name: db-01
net0: virtio=BC:24:11:00:00:01,bridge=vmbr0
ostype: l26
scsi0: local:100/vm-100-disk-0.qcow2,iothread=1,size=64M
scsi1: local:100/vm-100-disk-1.raw,size=16M
scsi2: local-lvm:vm-100-disk-2,size=32G
ide2: none,media=cdrom
scsihw: virtio-scsi-single
smbios1: uuid=2c1f0c1e-1111-4222-8333-944455556666

[before-upgrade]
scsi0: local:100/vm-100-disk-0.qcow2,size=64M
CFG
cat >$P/etc/pve/qemu-server/101.conf <<CFG
name: tmpl-debian
scsi0: local:101/base-101-disk-0.qcow2,size=64M
template: 1
CFG
cat >$P/etc/pve/qemu-server/102.conf <<CFG
name: web-02
scsi0: local:101/base-101-disk-0.qcow2/102/vm-102-disk-0.qcow2,size=64M
CFG
scan $P
eq "proxmox: images" "$(images $P)" "var/lib/vz/images/100/vm-100-disk-0.qcow2 qcow2 content;var/lib/vz/images/100/vm-100-disk-1.raw raw vm-config;var/lib/vz/images/101/base-101-disk-0.qcow2 qcow2 content;var/lib/vz/images/102/vm-102-disk-0.qcow2 qcow2 content;var/lib/vz/images/103/vm-103-disk-0.raw raw name;"
eq "proxmox: chains" "$(chains $P)" "var/lib/vz/images/102/vm-102-disk-0.qcow2 var/lib/vz/images/101/base-101-disk-0.qcow2;"
eq "proxmox: users" "$(users $P)" "proxmox db-01 ide2 empty -;proxmox db-01 scsi0 ok var/lib/vz/images/100/vm-100-disk-0.qcow2;proxmox db-01 scsi1 ok var/lib/vz/images/100/vm-100-disk-1.raw;proxmox db-01 scsi2 storage -;proxmox tmpl-debian scsi0 ok var/lib/vz/images/101/base-101-disk-0.qcow2;proxmox web-02 scsi0 ok var/lib/vz/images/102/vm-102-disk-0.qcow2;"
eq "proxmox: orphans" "$(orphans $P)" "var/lib/vz/images/103/vm-103-disk-0.raw standalone 1"

# ---- oVirt file storage domain: images/<img>/<vol> with .meta ----
O=ovirt
SD=$O/5f0e8a1c-0000-4000-8000-00000000dom1
IMG=$SD/images/a1b2c3d4-0000-4000-8000-000000000001
IMG2=$SD/images/a1b2c3d4-0000-4000-8000-000000000002
VB=b0000000-0000-4000-8000-0000000000b1
VT=b0000000-0000-4000-8000-0000000000b2
VS=b0000000-0000-4000-8000-0000000000b3
mkdir -p $IMG $IMG2 $SD/dom_md
meta() { # file format puuid voltype
	cat >"$1.meta" <<META
CAP=67108864
CTIME=1700000000
DESCRIPTION={"DiskAlias":"disk1","DiskDescription":""}
DISKTYPE=DATA
DOMAIN=5f0e8a1c-0000-4000-8000-00000000dom1
FORMAT=$2
GEN=0
IMAGE=${IMG##*/}
LEGALITY=LEGAL
PUUID=$3
TYPE=SPARSE
VOLTYPE=$4
META
	echo EOF >>"$1.meta"
}
qemu-img create -q -f raw $IMG/$VB 64M
qemu-img create -q -f qcow2 -b $VB -F raw $IMG/$VT
qemu-img create -q -f raw $IMG2/$VS 16M
meta $IMG/$VB RAW 00000000-0000-0000-0000-000000000000 INTERNAL
meta $IMG/$VT COW $VB LEAF
meta $IMG2/$VS RAW 00000000-0000-0000-0000-000000000000 LEAF
scan $O
eq "ovirt: images" "$(images $O)" "${IMG#$O/}/$VB raw layout;${IMG#$O/}/$VT qcow2 content;${IMG2#$O/}/$VS raw layout;"
eq "ovirt: chains" "$(chains $O)" "${IMG#$O/}/$VT ${IMG#$O/}/$VB;"
# no VM definitions (they live in the engine's database): nothing but bases is reclaimable
eq "ovirt: orphans" "$(orphans $O)" " 0"

# ---- VMware datastore: .vmx, descriptor + -flat, a delta snapshot ----
W=vmware
mkdir -p $W/datastore1/app01 $W/datastore1/old
qemu-img create -q -f vmdk -o subformat=monolithicFlat $W/datastore1/app01/app01.vmdk 64M
qemu-img create -q -f vmdk -b app01.vmdk -F vmdk $W/datastore1/app01/app01-000001.vmdk
qemu-img create -q -f vmdk $W/datastore1/old/old.vmdk 16M
cat >$W/datastore1/app01/app01.vmx <<VMX
.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "app01"
guestOS = "debian11-64"
memSize = "2048"
uuid.bios = "56 4d 12 34 56 78 9a bc-de f0 12 34 56 78 9a bc"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "app01-000001.vmdk"
scsi0:1.present = "FALSE"
scsi0:1.fileName = "detached.vmdk"
sata0.present = "TRUE"
sata0:0.present = "TRUE"
sata0:0.deviceType = "cdrom-raw"
sata0:0.fileName = "auto detect"
VMX
scan $W
eq "vmware: images" "$(images $W)" "datastore1/app01/app01-000001.vmdk vmdk content;datastore1/app01/app01.vmdk vmdk content;datastore1/old/old.vmdk vmdk content;"
eq "vmware: chains" "$(chains $W)" "datastore1/app01/app01-000001.vmdk datastore1/app01/app01.vmdk;"
eq "vmware: users" "$(users $W)" "vmware app01 sata0:0 empty -;vmware app01 scsi0:0 ok datastore1/app01/app01-000001.vmdk;"
eq "vmware: orphans" "$(orphans $W)" "datastore1/old/old.vmdk standalone 1"

# ---- VirtualBox VM folder with Snapshots/ ----
X=vbox
U1=4a5b6c7d-0000-4000-8000-000000000001
U2=4a5b6c7d-0000-4000-8000-000000000002
mkdir -p "$X/VirtualBox VMs/deb12/Snapshots"
qemu-img create -q -f vdi "$X/VirtualBox VMs/deb12/deb12.vdi" 64M
qemu-img create -q -f vdi "$X/VirtualBox VMs/deb12/Snapshots/{$U2}.vdi" 64M
qemu-img create -q -f vdi "$X/VirtualBox VMs/lost.vdi" 16M
cat >"$X/VirtualBox VMs/deb12/deb12.vbox" <<VBOX
<?xml version="1.0"?>
<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
  <Machine uuid="{9f8e7d6c-0000-4000-8000-0000000000aa}" name="deb12" OSType="Debian_64" currentSnapshot="{5e000000-0000-4000-8000-000000000001}" snapshotFolder="Snapshots">
    <MediaRegistry>
      <HardDisks>
        <HardDisk uuid="{$U1}" location="deb12.vdi" format="VDI" type="Normal">
          <HardDisk uuid="{$U2}" location="Snapshots/{$U2}.vdi" format="VDI"/>
        </HardDisk>
      </HardDisks>
    </MediaRegistry>
    <Snapshot uuid="{5e000000-0000-4000-8000-000000000001}" name="clean">
      <StorageControllers>
        <StorageController name="SATA" type="AHCI" PortCount="1">
          <AttachedDevice type="HardDisk" hotpluggable="false" port="0" device="0"><Image uuid="{$U1}"/></AttachedDevice>
        </StorageController>
      </StorageControllers>
    </Snapshot>
    <StorageControllers>
      <StorageController name="SATA" type="AHCI" PortCount="1">
        <AttachedDevice type="HardDisk" hotpluggable="false" port="0" device="0"><Image uuid="{$U2}"/></AttachedDevice>
        <AttachedDevice passthrough="false" type="DVD" hotpluggable="false" port="1" device="0"/>
      </StorageController>
    </StorageControllers>
  </Machine>
</VirtualBox>
VBOX
scan $X
eq "vbox: images" "$(images $X)" "VirtualBox VMs/deb12/Snapshots/{$U2}.vdi vdi content;VirtualBox VMs/deb12/deb12.vdi vdi content;VirtualBox VMs/lost.vdi vdi content;"
eq "vbox: users" "$(users $X)" "virtualbox deb12 SATA:0:0 ok VirtualBox VMs/deb12/Snapshots/{$U2}.vdi;virtualbox deb12 SATA:1:0 empty -;"
eq "vbox: registry" "$(q $X/db.sqlite "SELECT uuid, coalesce(parent_uuid, '-'), location, file_id IS NOT NULL FROM vm_media ORDER BY location")" "{$U2} {$U1} Snapshots/{$U2}.vdi 1;{$U1} - deb12.vdi 1;"
eq "vbox: orphans" "$(orphans $X)" "VirtualBox VMs/lost.vdi standalone 1"

lib_summary test_store_layouts
