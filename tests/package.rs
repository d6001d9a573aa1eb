//! The Debian package (issue 7, item 5). `scripts/package.sh` builds a .deb from this test's
//! own debug binaries; the test reads it back with `dpkg-deb --info/--contents`, extracts it,
//! runs the packaged `vendd check-config` on the packaged Pi config (its absolute
//! `/usr/share/vendd` paths rewritten into the extracted tree), runs the maintainer scripts
//! against the extracted tree as `$DPKG_ROOT` with logging stubs for the commands that would
//! touch the host (adduser, chown, systemctl, ...), and drives the SPI/I2C/UART check with fake
//! `config.txt` files. Needs dpkg-deb (Debian); skipped without it.

use crate::common::bin;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs the command, asserts success, returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `Name: value` of the control data printed by `dpkg-deb --info`.
fn field(info: &str, name: &str) -> String {
    let prefix = format!("{name}: ");
    info.lines()
        .find_map(|l| l.trim_start().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in dpkg-deb --info:\n{info}"))
        .to_owned()
}

fn needs_libvosk(binary: &Path) -> bool {
    ok(Command::new("readelf").arg("-d").arg(binary)).contains("Shared library: [libvosk.so]")
}

fn runpath(binary: &Path) -> Option<String> {
    ok(Command::new("readelf").arg("-d").arg(binary))
        .lines()
        .find(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        .and_then(|l| l.split('[').nth(1))
        .map(|s| s.trim_end_matches(']').to_owned())
}

#[test]
fn the_package_holds_binaries_units_pi_config_and_working_maintainer_scripts() {
    if !have("dpkg-deb") || !have("readelf") {
        eprintln!("SKIP: dpkg-deb and readelf are needed (dpkg, binutils)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bindir = bin("vendd").parent().unwrap().to_path_buf();
    let out_dir = tmp.path().join("out");
    let stdout = ok(Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/package.sh"))
        .arg("--binaries")
        .arg(&bindir)
        .arg("--out")
        .arg(&out_dir)
        .args(["--compression", "none"]));
    let deb = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("package.sh prints the .deb path"),
    );
    let arch = ok(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_owned();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(arch, "amd64");
    }
    let deb_version = VERSION.replace('-', "~");
    assert_eq!(deb, out_dir.join(format!("vendd_{deb_version}_{arch}.deb")));

    // Control data.
    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert_eq!(field(&info, "Package"), "vendd");
    assert_eq!(field(&info, "Version"), deb_version);
    assert_eq!(field(&info, "Architecture"), arch);
    let maintainer = field(&info, "Maintainer");
    assert!(
        maintainer.contains('<') && maintainer.contains('@'),
        "{maintainer}"
    );
    assert!(field(&info, "Installed-Size").parse::<u64>().unwrap() > 1000);
    let depends = field(&info, "Depends");
    for dep in ["libc6 (>= 2.", "libgcc-s1", "libasound2", "adduser"] {
        assert!(depends.contains(dep), "Depends lacks {dep}: {depends}");
    }
    assert!(field(&info, "Recommends").contains("chromium"));
    assert!(field(&info, "Description").contains("vending machine"));
    for member in [
        "control",
        "conffiles",
        "md5sums",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().any(|w| w == member)),
            "no {member} in the control archive:\n{info}"
        );
    }

    // File list: path → (permissions, owner).
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let files: BTreeMap<String, (String, String)> = contents
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[5].to_owned(), (w[0].to_owned(), w[1].to_owned()))
        })
        .collect();
    let vosk = needs_libvosk(&bin("vendd")) || needs_libvosk(&bin("vendctl"));
    let mut expected = vec![
        ("./usr/bin/vendd", "-rwxr-xr-x"),
        ("./usr/bin/vendctl", "-rwxr-xr-x"),
        ("./lib/systemd/system/vendd.service", "-rw-r--r--"),
        ("./usr/lib/systemd/user/vendd-kiosk.service", "-rw-r--r--"),
        ("./etc/vendd/vendd.toml", "-rw-r--r--"),
        ("./usr/share/vendd/check-pi.sh", "-rwxr-xr-x"),
        (
            "./usr/share/vendd/pinmaps/pinmap-6x10-spiral.toml",
            "-rw-r--r--",
        ),
        (
            "./usr/share/vendd/pinmaps/pinmap-4x8-relay-hat.toml",
            "-rw-r--r--",
        ),
        ("./usr/share/vendd/models/manifest.toml", "-rw-r--r--"),
        ("./usr/share/doc/vendd/README.md", "-rw-r--r--"),
        ("./usr/share/doc/vendd/copyright", "-rw-r--r--"),
    ];
    if vosk {
        expected.push(("./usr/lib/vendd/libvosk.so", "-rw-r--r--"));
    }
    for (path, perms) in expected {
        let (got, _) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{contents}"));
        assert_eq!(got, perms, "{path}");
    }
    for (path, (perms, owner)) in &files {
        assert_eq!(owner, "root/root", "{path}");
        let p = perms.as_bytes();
        assert!(
            p[5] != b'w' && p[8] != b'w',
            "{path} is writable by others: {perms}"
        );
        assert!(!path.contains(ROOT), "{path} names the build tree");
    }

    // Extract: the data, and the control archive.
    let root = tmp.path().join("root");
    let ctrl = tmp.path().join("DEBIAN");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl));
    ok(Command::new("md5sum")
        .args(["--quiet", "-c"])
        .arg(ctrl.join("md5sums"))
        .current_dir(&root));
    assert_eq!(
        std::fs::read_to_string(ctrl.join("conffiles")).unwrap(),
        "/etc/vendd/vendd.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let p = ctrl.join(script);
        assert_eq!(mode(&p), 0o755, "{script}");
        ok(Command::new("sh").arg("-n").arg(&p));
    }
    for (packaged, source) in [
        ("lib/systemd/system/vendd.service", "systemd/vendd.service"),
        (
            "usr/lib/systemd/user/vendd-kiosk.service",
            "systemd/vendd-kiosk.service",
        ),
        ("usr/share/vendd/check-pi.sh", "packaging/deb/check-pi.sh"),
    ] {
        assert_eq!(
            std::fs::read(root.join(packaged)).unwrap(),
            std::fs::read(Path::new(ROOT).join(source)).unwrap(),
            "{packaged}"
        );
    }

    // The packaged binaries find libvosk in /usr/lib/vendd (RUNPATH, or ld.so.conf.d).
    let lib_dir = root.join("usr/lib/vendd");
    if vosk {
        let rp = runpath(&root.join("usr/bin/vendd"));
        let conf = root.join("etc/ld.so.conf.d/vendd.conf");
        assert!(
            rp.as_deref() == Some("/usr/lib/vendd")
                || std::fs::read_to_string(&conf).is_ok_and(|c| c.contains("\n/usr/lib/vendd\n")),
            "the packaged vendd has RUNPATH {rp:?} and no {}",
            conf.display()
        );
    }

    // The Pi config: rpi backend, absolute install paths, and valid for the packaged vendd.
    let conf_text = std::fs::read_to_string(root.join("etc/vendd/vendd.toml")).unwrap();
    for line in [
        "backend = \"rpi\"",
        "pinmap = \"/usr/share/vendd/pinmaps/pinmap-6x10-spiral.toml\"",
        "models = \"/usr/share/vendd/models\"",
        "clips = \"/usr/share/vendd/voice\"",
        "dir = \"/var/lib/vendd\"",
        "device_secret_file = \"/etc/vendd/device.key\"",
        "reader = \"spi\"",
    ] {
        assert!(
            conf_text.lines().any(|l| l.starts_with(line)),
            "the packaged config lacks `{line}`"
        );
    }
    // check-config reads the pin map and the device secret: point those absolute paths into
    // the extracted tree and at a test key, and run the packaged binary on the copy.
    let key = tmp.path().join("device.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let rewritten = conf_text
        .replace(
            "\"/usr/share/vendd/",
            &format!("\"{}/usr/share/vendd/", root.display()),
        )
        .replace(
            "\"/etc/vendd/device.key\"",
            &format!("\"{}\"", key.display()),
        );
    let check = tmp.path().join("vendd-check.toml");
    std::fs::write(&check, rewritten).unwrap();
    let verdict = ok(Command::new(root.join("usr/bin/vendd"))
        .arg("check-config")
        .arg(&check)
        .env("LD_LIBRARY_PATH", &lib_dir));
    assert!(verdict.contains("backend Rpi"), "{verdict}");

    maintainer_scripts_in_a_sandbox(tmp.path(), &root, &ctrl);
}

/// postinst (first install, then an upgrade on a "Pi"), prerm remove and postrm purge with
/// `$DPKG_ROOT` = the extracted tree and stubs for every command that would change the host.
fn maintainer_scripts_in_a_sandbox(tmp: &Path, root: &Path, ctrl: &Path) {
    let stubs = tmp.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = tmp.join("stub.log");
    let stub = |name: &str, body: &str| {
        let p = stubs.join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho \"{name} $*\" >>\"$STUB_LOG\"\n{body}\nexit 0\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    stub(
        "getent",
        r#"case "$1" in
  passwd) [ -e "$STUB_DIR/user" ] && exit 0; exit 2 ;;
  group) case " $FAKE_GROUPS " in *" $2 "*) exit 0 ;; esac; exit 2 ;;
esac"#,
    );
    stub(
        "adduser",
        r#"case " $* " in *" --system "*) touch "$STUB_DIR/user" ;; esac"#,
    );
    stub(
        "dpkg-statoverride",
        r#"case " $* " in *" --list "*) exit 1 ;; esac"#,
    );
    for name in [
        "chown",
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
        "ldconfig",
    ] {
        stub(name, "");
    }
    let script = |args: &[&str]| -> String {
        let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap());
        let out = ok(Command::new("sh")
            .arg(ctrl.join(args[0]))
            .args(&args[1..])
            .env("DPKG_ROOT", root)
            .env("PATH", path)
            .env("STUB_LOG", &log)
            .env("STUB_DIR", &stubs)
            .env("FAKE_GROUPS", "dialout video audio"));
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::remove_file(&log).ok();
        format!("{out}\n--- calls ---\n{calls}")
    };

    // First install on a box that is not a Pi.
    let first = script(&["postinst", "configure"]);
    for want in [
        "adduser --quiet --system --group --home /var/lib/vendd --no-create-home",
        "adduser --quiet vendd video",
        "adduser --quiet vendd dialout",
        "no group(s) gpio spi i2c on this system",
        "chown vendd:vendd",
        "--update --add root vendd 0750 /etc/vendd",
        "deb-systemd-helper enable vendd.service",
        "not a Raspberry Pi",
        "installed and enabled, not started",
    ] {
        assert!(
            first.contains(want),
            "postinst configure: no `{want}` in:\n{first}"
        );
    }
    assert!(!first.contains("vendd gpio"), "{first}");
    let calls = first.split("--- calls ---").nth(1).unwrap();
    assert!(
        !calls.contains("\nsystemctl ") && !calls.contains("\ndeb-systemd-invoke "),
        "first install without systemd running must not touch units:\n{first}"
    );
    assert_eq!(mode(&root.join("var/lib/vendd")), 0o700);
    assert_eq!(mode(&root.join("var/log/vendd")), 0o750);
    let key_path = root.join("etc/vendd/device.key");
    assert_eq!(mode(&key_path), 0o640);
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(
        key.len() == 65 && key.trim_end().bytes().all(|b| b.is_ascii_hexdigit()),
        "device.key: {key:?}"
    );

    // An upgrade on a "Pi" with systemd running: the key stays, the daemon is try-restarted,
    // and the buses are checked against the pin map of the installed config (SPI0 only).
    std::fs::create_dir_all(root.join("boot/firmware")).unwrap();
    std::fs::write(root.join("boot/firmware/config.txt"), "dtparam=spi=on\n").unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("dev/spidev0.0"), "").unwrap();
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let upgrade = script(&["postinst", "configure", VERSION]);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    for want in [
        "ok: SPI (SPI0, PN532 reader) enabled",
        "ok: I2C (I2C1) off",
        "ok: UART (UART0 on GPIO 14/15) off",
        "systemctl --system daemon-reload",
        "deb-systemd-invoke try-restart vendd.service",
    ] {
        assert!(
            upgrade.contains(want),
            "postinst upgrade: no `{want}` in:\n{upgrade}"
        );
    }
    assert!(!upgrade.contains("--system --group"), "{upgrade}");
    assert!(!upgrade.contains("WARNING"), "{upgrade}");
    assert!(!upgrade.contains("installed and enabled"), "{upgrade}");

    let remove = script(&["prerm", "remove"]);
    assert!(
        remove.contains("deb-systemd-invoke stop vendd.service"),
        "{remove}"
    );
    assert!(remove.contains("journal export"), "{remove}");
    assert!(
        root.join("var/lib/vendd").is_dir(),
        "remove must keep the journal"
    );

    let purge = script(&["postrm", "purge"]);
    assert!(purge.contains("deleting /var/lib/vendd"), "{purge}");
    assert!(
        purge.contains("deb-systemd-helper purge vendd.service"),
        "{purge}"
    );
    assert!(!root.join("var/lib/vendd").exists());
    assert!(!root.join("var/log/vendd").exists());
    assert!(!key_path.exists());
}

/// Runs check-pi.sh; asserts exit 0 and an empty stderr; returns stdout.
fn check_pi(config: &Path, dev: &Path, pinmap: Option<&str>) -> String {
    let mut cmd = Command::new("sh");
    cmd.arg(Path::new(ROOT).join("packaging/deb/check-pi.sh"))
        .arg(config)
        .arg(dev);
    if let Some(m) = pinmap {
        cmd.arg(Path::new(ROOT).join("hardware").join(m));
    }
    let out = output(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{cmd:?}: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_pi_bus_check_names_each_missing_interface_with_its_fix_and_never_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let config = tmp.path().join("config.txt");

    // Nothing enabled, no pin map: all three are wanted and each is reported with its fix.
    std::fs::write(&config, "# dtparam=spi=on\n[all]\ndtparam=audio=on\n").unwrap();
    let out = check_pi(&config, &dev, None);
    for (name, fix, line) in [
        ("SPI", "raspi-config nonint do_spi 0", "dtparam=spi=on"),
        ("I2C", "raspi-config nonint do_i2c 0", "dtparam=i2c_arm=on"),
        (
            "UART",
            "raspi-config nonint do_serial_hw 0",
            "enable_uart=1",
        ),
    ] {
        assert!(out.contains(&format!("WARNING: {name}")), "{name}:\n{out}");
        assert!(out.contains(fix) && out.contains(line), "{name}:\n{out}");
    }

    // Enabled (one dtparam line with two parameters) but not yet rebooted: no device nodes.
    std::fs::write(&config, "dtparam=spi=on,i2c_arm=on\nenable_uart=1\n").unwrap();
    let out = check_pi(&config, &dev, None);
    assert_eq!(
        out.matches("reboot to load the overlay").count(),
        3,
        "{out}"
    );

    // Enabled and present: all ok.
    for node in ["spidev0.0", "i2c-1", "serial0"] {
        std::fs::write(dev.join(node), "").unwrap();
    }
    let out = check_pi(&config, &dev, None);
    assert!(
        !out.contains("WARNING") && out.matches("ok: ").count() == 3,
        "{out}"
    );

    // With a pin map, a bus it leaves off but config.txt turns on is reported: the 6×10 map
    // uses the I2C and UART pins as GPIO, the 4×8 map the SPI pins.
    let out = check_pi(&config, &dev, Some("pinmap-6x10-spiral.toml"));
    assert!(out.contains("ok: SPI"), "{out}");
    assert!(
        out.contains("do_i2c 1") && out.contains("do_serial_hw 1"),
        "{out}"
    );
    let out = check_pi(&config, &dev, Some("pinmap-4x8-relay-hat.toml"));
    assert!(out.contains("do_spi 1") && out.contains("ok: I2C"), "{out}");

    // A login console on the UART is reported when the UART is wanted.
    std::fs::write(
        tmp.path().join("cmdline.txt"),
        "console=serial0,115200 root=PARTUUID=x\n",
    )
    .unwrap();
    let out = check_pi(&config, &dev, Some("pinmap-4x8-relay-hat.toml"));
    assert!(out.contains("do_serial_cons 1"), "{out}");

    // Not a Pi: no config.txt; a note, exit 0.
    let out = check_pi(&tmp.path().join("missing.txt"), &dev, None);
    assert!(out.contains("not checked"), "{out}");
}
