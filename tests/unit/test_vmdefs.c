/*
 * VM definitions (scanner/vmdefs*.c): what each format names, and hostile
 * inputs (entities, external DTDs, huge or binary files, deep nesting, long
 * lines, names leaving the storage) refused or read safely, never a crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmdefs.h"

static int parse(enum ia_vmdef_file k, const char *path, const char *text,
                 const struct ia_pve_storages *pve, struct ia_vmdef *d, struct ia_error *err)
{
        ia_error_clear(err);
        return ia_vmdef_parse(k, path, text, strlen(text), pve, d, err);
}

static void test_classify(void **state)
{
        (void)state;
        assert_int_equal(ia_vmdef_classify("/etc/libvirt/qemu/web.xml"), IA_VMDEF_LIBVIRT);
        assert_int_equal(ia_vmdef_classify("/etc/pve/qemu-server/100.conf"), IA_VMDEF_PROXMOX);
        assert_int_equal(ia_vmdef_classify("/etc/pve/qemu-server/x.conf"), IA_VMDEF_NONE);
        assert_int_equal(ia_vmdef_classify("/etc/foo.conf"), IA_VMDEF_NONE);
        assert_int_equal(ia_vmdef_classify("/etc/pve/storage.cfg"), IA_VMDEF_PVE_STORE);
        assert_int_equal(ia_vmdef_classify("vm/a.VMX"), IA_VMDEF_VMX);
        assert_int_equal(ia_vmdef_classify("vm/a.vbox"), IA_VMDEF_VBOX);
        assert_int_equal(ia_vmdef_classify("img/v.meta"), IA_VMDEF_OVIRT_META);
        assert_int_equal(ia_vmdef_classify("disk.qcow2"), IA_VMDEF_NONE);
}

static void test_libvirt(void **state)
{
        struct ia_vmdef d;
        struct ia_error err;
        const char *x = "<domain type='kvm'><name>web</name><uuid>u-1</uuid><devices>"
                        "<disk type='file' device='disk'><driver type='qcow2'/>"
                        "<source file='web.qcow2'/><target dev='vda' bus='virtio'/></disk>"
                        "<disk type='block'><source dev='/dev/vg/lv'/><target dev='vdb'/></disk>"
                        "<disk type='network'><source protocol='rbd' name='p/v'/></disk>"
                        "<disk type='volume'><source pool='default' volume='v.img'/></disk>"
                        "<disk type='file' device='cdrom'/></devices></domain>";

        (void)state;
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "/etc/q/web.xml", x, NULL, &d, &err), 1);
        assert_string_equal(d.name, "web");
        assert_string_equal(d.uuid, "u-1");
        assert_int_equal(d.ndisks, 5);
        assert_string_equal(d.disks[0].path, "/etc/q/web.qcow2"); /* relative: beside it */
        assert_string_equal(d.disks[0].format, "qcow2");
        assert_string_equal(d.disks[0].target, "vda");
        assert_string_equal(d.disks[1].path, "/dev/vg/lv");
        assert_null(d.disks[2].path);
        assert_string_equal(d.disks[2].why, "network");
        assert_string_equal(d.disks[3].source, "default/v.img");
        assert_string_equal(d.disks[3].why, "pool");
        assert_string_equal(d.disks[4].why, "empty");
        ia_vmdef_free(&d);
        /* an XML file that is no domain is not a definition */
        assert_int_equal(
            parse(IA_VMDEF_LIBVIRT, "a.xml", "<pool><name>x</name></pool>", NULL, &d, &err), 0);
}

static void test_xml_hostile(void **state)
{
        struct ia_vmdef d;
        struct ia_error err;
        /* a billion laughs, an external entity, an external DTD: all refused */
        const char *laughs =
            "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaa'>"
            "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
            "<domain><name>&c;</name></domain>";
        const char *laughs_attr =
            "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaa'>"
            "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
            "<domain><devices><disk><source file='&b;'/></disk></devices></domain>";
        const char *xxe = "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY x SYSTEM "
                          "'file:///etc/passwd'>]><domain><name>&x;</name></domain>";
        const char *dtd = "<?xml version='1.0'?><!DOCTYPE domain SYSTEM "
                          "'http://127.0.0.1:9/x.dtd'><domain><name>n</name></domain>";
        size_t depth = 100000, len = depth * 3 + 64;
        char *deep = malloc(len), *p;

        (void)state;
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", laughs, NULL, &d, &err), -1);
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", laughs_attr, NULL, &d, &err), -1);
        /* any DTD at all, even a harmless one, is refused by name */
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml",
                               "<!DOCTYPE domain [<!ENTITY n 'web'>]><domain><name>&n;</name>"
                               "</domain>",
                               NULL, &d, &err),
                         -1);
        assert_non_null(strstr(err.msg, "DTD"));
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", xxe, NULL, &d, &err), -1);
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", dtd, NULL, &d, &err), -1);
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", "<domain><name>", NULL, &d, &err), -1);
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", "<domain", NULL, &d, &err), -1);
        /* a broken XML file that is no domain is just not a definition */
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", "<pom><x>", NULL, &d, &err), 0);
        assert_int_equal(parse(IA_VMDEF_VBOX, "a.vbox", "<VirtualBox/>", NULL, &d, &err), -1);
        /* nesting far beyond libxml2's limit: an error, not a stack overflow */
        assert_non_null(deep);
        p = deep;
        p += snprintf(p, 16, "<domain>");
        for (size_t i = 0; i < depth; i++)
                memcpy(p, "<a>", 3), p += 3;
        *p = 0;
        assert_int_equal(parse(IA_VMDEF_LIBVIRT, "a.xml", deep, NULL, &d, &err), -1);
        free(deep);
        /* over the size cap */
        ia_error_clear(&err);
        assert_int_equal(ia_vmdef_parse(IA_VMDEF_LIBVIRT, "a.xml", "<domain/>",
                                        IA_VMDEF_MAX_BYTES + 1u, NULL, &d, &err),
                         -1);
}

static void test_vbox(void **state)
{
        struct ia_vmdef d;
        struct ia_error err;
        const char *x =
            "<VirtualBox><Machine uuid='{m}' name='deb'><MediaRegistry><HardDisks>"
            "<HardDisk uuid='{a}' location='deb.vdi' format='VDI'>"
            "<HardDisk uuid='{b}' location='Snapshots/{b}.vdi' format='VDI'/></HardDisk>"
            "</HardDisks></MediaRegistry><StorageControllers>"
            "<StorageController name='SATA' type='AHCI'>"
            "<AttachedDevice type='HardDisk' port='0' device='0'><Image uuid='{B}'/>"
            "</AttachedDevice><AttachedDevice type='HardDisk' port='1' device='0'>"
            "<Image uuid='{zzz}'/></AttachedDevice></StorageController>"
            "</StorageControllers></Machine></VirtualBox>";
        char *deep;
        size_t n = 200;

        (void)state;
        assert_int_equal(parse(IA_VMDEF_VBOX, "/v/deb/deb.vbox", x, NULL, &d, &err), 1);
        assert_string_equal(d.name, "deb");
        assert_int_equal(d.nmedia, 2);
        assert_null(d.media[0].parent_uuid);
        assert_string_equal(d.media[1].parent_uuid, "{a}");
        assert_string_equal(d.media[1].path, "/v/deb/Snapshots/{b}.vdi");
        assert_int_equal(d.ndisks, 2);
        assert_string_equal(d.disks[0].target, "SATA:0:0");
        assert_string_equal(d.disks[0].path, "/v/deb/Snapshots/{b}.vdi"); /* UUIDs: any case */
        assert_string_equal(d.disks[1].why, "not-in-registry");
        ia_vmdef_free(&d);
        /* a registry nested deeper than 64 levels is refused */
        {
                size_t cap = n * 48 + 200, off = 0;

                deep = malloc(cap);
                assert_non_null(deep);
                off += (size_t)snprintf(deep + off, cap - off,
                                        "<VirtualBox><Machine name='x'><MediaRegistry><HardDisks>");
                for (size_t i = 0; i < n; i++)
                        off += (size_t)snprintf(deep + off, cap - off,
                                                "<HardDisk uuid='{%zu}' location='a'>", i);
                for (size_t i = 0; i < n; i++)
                        off += (size_t)snprintf(deep + off, cap - off, "</HardDisk>");
                snprintf(deep + off, cap - off,
                         "</HardDisks></MediaRegistry></Machine></VirtualBox>");
                assert_int_equal(parse(IA_VMDEF_VBOX, "a.vbox", deep, NULL, &d, &err), -1);
                assert_non_null(strstr(err.msg, "deep"));
                free(deep);
        }
}

static void test_vmx(void **state)
{
        struct ia_vmdef d;
        struct ia_error err;
        const char *x = "displayName = \"app\"\n"
                        "scsi0:0.present = \"TRUE\"\n"
                        "scsi0:0.fileName = \"app-000001.vmdk\"\n"
                        "scsi0:1.present = \"FALSE\"\n"
                        "scsi0:1.fileName = \"gone.vmdk\"\n"
                        "nvme0:0.fileName = \"/vmfs/volumes/ds2/app/data.vmdk\"\n"
                        "ide1:0.deviceType = \"cdrom-raw\"\n"
                        "ide1:0.fileName = \"auto detect\"\n"
                        "garbage line without equals\n"
                        "ethernet0.fileName = \"not-a-disk\"\n";
        char bin[8] = {'a', '=', 0, 'b', '\n', 0, 0, 0};

        (void)state;
        assert_int_equal(parse(IA_VMDEF_VMX, "/ds/app/app.vmx", x, NULL, &d, &err), 1);
        assert_string_equal(d.name, "app");
        assert_int_equal(d.ndisks, 3);
        assert_string_equal(d.disks[0].path, "/ds/app/app-000001.vmdk");
        assert_string_equal(d.disks[1].path, "/vmfs/volumes/ds2/app/data.vmdk");
        assert_string_equal(d.disks[1].bus, "nvme");
        assert_string_equal(d.disks[2].why, "empty");
        ia_vmdef_free(&d);
        ia_error_clear(&err);
        assert_int_equal(ia_vmdef_parse(IA_VMDEF_VMX, "a.vmx", bin, 5, NULL, &d, &err), -1);
}

static void test_proxmox(void **state)
{
        struct ia_vmdef d;
        struct ia_error err;
        struct ia_pve_storages st = {0};
        const char *cfg = "dir: local\n\tpath /var/lib/vz\n\tcontent images\n\n"
                          "dir: fast\n\tpath /mnt/fast\n\n"
                          "lvmthin: local-lvm\n\tthinpool data\n";
        const char *conf = "name: db\n"
                           "scsi0: fast:100/vm-100-disk-0.qcow2,size=8G\n"
                           "virtio1: local:101/base-101-disk-0.qcow2/100/vm-100-disk-1.qcow2\n"
                           "sata2: local-lvm:vm-100-disk-2,size=4G\n"
                           "ide2: local:iso/debian.iso,media=cdrom\n"
                           "ide3: none,media=cdrom\n"
                           "unused0: fast:100/vm-100-disk-9.raw\n"
                           "scsi5: fast:../../etc/passwd\n"
                           "scsi6: nosuch:100/x.raw\n"
                           "[snap1]\n"
                           "scsi9: fast:100/old.qcow2\n";
        char *longline;

        (void)state;
        ia_error_clear(&err);
        assert_int_equal(ia_pve_storage_parse(cfg, strlen(cfg), &st, &err), 0);
        assert_int_equal(st.n, 3);
        assert_int_equal(
            parse(IA_VMDEF_PROXMOX, "/etc/pve/qemu-server/100.conf", conf, &st, &d, &err), 1);
        assert_string_equal(d.name, "db");
        assert_string_equal(d.uuid, "100");
        assert_int_equal(d.ndisks, 8); /* the snapshot section is not the current state */
        assert_string_equal(d.disks[0].path, "/mnt/fast/images/100/vm-100-disk-0.qcow2");
        assert_string_equal(d.disks[1].path, "/var/lib/vz/images/100/vm-100-disk-1.qcow2");
        assert_string_equal(d.disks[2].why, "storage");
        assert_string_equal(d.disks[3].path, "/var/lib/vz/template/iso/debian.iso");
        assert_string_equal(d.disks[3].device, "cdrom");
        assert_string_equal(d.disks[4].why, "empty");
        assert_string_equal(d.disks[5].device, "unused");
        assert_null(d.disks[6].path); /* ".." never leaves the storage */
        assert_string_equal(d.disks[7].why, "storage");
        ia_vmdef_free(&d);
        ia_pve_storages_free(&st);
        /* a line over 64 KiB */
        longline = malloc(70000);
        assert_non_null(longline);
        memset(longline, 'a', 69999);
        longline[69999] = 0;
        assert_int_equal(parse(IA_VMDEF_PROXMOX, "/q/qemu-server/1.conf", longline, NULL, &d, &err),
                         -1);
        free(longline);
}

static void test_ovirt(void **state)
{
        struct ia_ovirt_meta m;
        struct ia_error err;
        const char *raw = "CAP=1\nFORMAT=RAW\nPUUID=00000000-0000-0000-0000-000000000000\nEOF\n";
        const char *cow = "FORMAT=COW\nPUUID=b1\nIMAGE=i1\nVOLTYPE=LEAF\nEOF\n";
        const char *bad = "FORMAT=QCOW9\n";

        (void)state;
        assert_int_equal(ia_ovirt_meta_parse(raw, strlen(raw), &m, &err), 1);
        assert_string_equal(m.format, "RAW");
        assert_null(m.puuid); /* all zeros: no parent */
        ia_ovirt_meta_free(&m);
        assert_int_equal(ia_ovirt_meta_parse(cow, strlen(cow), &m, &err), 1);
        assert_string_equal(m.puuid, "b1");
        assert_string_equal(m.voltype, "LEAF");
        ia_ovirt_meta_free(&m);
        assert_int_equal(ia_ovirt_meta_parse(bad, strlen(bad), &m, &err), -1);
        assert_int_equal(ia_ovirt_meta_parse("x=y\n", 4, &m, &err), 0);
        assert_int_equal(ia_ovirt_meta_parse("FORMAT=RAW\0", 11, &m, &err), 0); /* binary */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_classify),    cmocka_unit_test(test_libvirt),
            cmocka_unit_test(test_xml_hostile), cmocka_unit_test(test_vbox),
            cmocka_unit_test(test_vmx),         cmocka_unit_test(test_proxmox),
            cmocka_unit_test(test_ovirt),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
