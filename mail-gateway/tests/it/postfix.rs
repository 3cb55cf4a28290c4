//! Interop through a real Postfix (the Debian package): Postfix receives for
//! licensing@, hands the message to `mail-gateway deliver` (pipe transport),
//! and relays the reply to the customer's Maildir, where the test finds the
//! license file. Skipped, with a notice, where Postfix is not installed or
//! the test does not run as root (CI installs it and runs as root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shared_proto::ServerIdentity;

use crate::helpers::{gateway_bin, send_mail, sync_data, sync_mail, Gateway, MainServer, DEADLINE};

const OPS: &str = "ops@acme.example";

fn postfix_available() -> bool {
    let installed = Path::new("/usr/sbin/postfix").exists();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    installed && root
}

/// A private Postfix instance; stopped on drop.
struct Postfix {
    config: PathBuf,
    log: PathBuf,
}

impl Postfix {
    fn start(dir: &Path, port: u16, gateway: &Path, gateway_data: &Path) -> Postfix {
        let config = dir.join("conf");
        let queue = dir.join("queue");
        let data = dir.join("data");
        let mail = dir.join("mail");
        for d in [&config, &queue, &data, &mail] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Postfix's own users write the data and mail folders.
        Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .unwrap();
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o777)).unwrap();
        let log = dir.join("maillog");
        let d = dir.display();
        std::fs::write(
            config.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {d}/queue\n\
                 data_directory = {d}/data\n\
                 mail_owner = postfix\n\
                 setgid_group = postdrop\n\
                 inet_interfaces = loopback-only\n\
                 inet_protocols = ipv4\n\
                 myhostname = mx.solme.example\n\
                 mydomain = solme.example\n\
                 myorigin = solme.example\n\
                 mydestination =\n\
                 mynetworks = 127.0.0.0/8\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
                 relay_domains = solme.example\n\
                 transport_maps = inline:{{ solme.example=solmegw: }}\n\
                 solmegw_destination_recipient_limit = 1\n\
                 virtual_mailbox_domains = acme.example\n\
                 virtual_mailbox_base = {d}/mail\n\
                 virtual_mailbox_maps = inline:{{ {OPS}=acme/ }}\n\
                 virtual_uid_maps = static:65534\n\
                 virtual_gid_maps = static:65534\n\
                 alias_maps =\n\
                 alias_database =\n\
                 local_recipient_maps =\n\
                 smtputf8_enable = no\n\
                 biff = no\n\
                 maillog_file = {d}/maillog\n\
                 maillog_file_prefixes = {d}\n\
                 header_checks = regexp:{d}/conf/strip_authres\n"
            ),
        )
        .unwrap();
        // As the mail-gateway README says: every Authentication-Results that
        // arrives with a mail is removed (only the milters' own are added after).
        std::fs::write(
            config.join("strip_authres"),
            "/^Authentication-Results:/ IGNORE\n",
        )
        .unwrap();
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n{}\n\
             solmegw unix - n n - - pipe\n  \
             flags=Rq user=nobody null_sender= argv={} deliver --data-dir {} --sender=${{sender}} --recipient=${{recipient}}\n",
            services.join("\n"),
            gateway.display(),
            gateway_data.display()
        );
        std::fs::write(config.join("master.cf"), master).unwrap();
        let postfix = Postfix { config, log };
        postfix.control("start");
        postfix
    }

    fn control(&self, verb: &str) {
        let status = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.config)
            .arg(verb)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "postfix {verb} failed; see {}",
            self.log.display()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A main server, a gateway fed by `deliver` from a private Postfix, and that
/// Postfix listening on `port`.
struct ThroughPostfix {
    root: tempfile::TempDir,
    main: MainServer,
    gw: Gateway,
    postfix: Postfix,
    port: u16,
}

impl ThroughPostfix {
    fn start(gateway_args: &[&str]) -> ThroughPostfix {
        let root = tempfile::tempdir().unwrap();
        // Postfix's users (postfix, nobody) must reach into the test directory.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let gateway = bin.join("mail-gateway");
        std::fs::copy(gateway_bin(), &gateway).unwrap();

        let main = MainServer::start(root.path());
        // Held (not listening) until Postfix takes the port over.
        let (_reserved, reserved) = crate::helpers::reserve_port().unwrap();
        let port = reserved.port();
        let relay = format!("smtp://127.0.0.1:{port}");
        let mut args = vec![
            "--smtp-listen",
            "off",
            "--smtp-relay",
            &relay,
            "--smtp-relay-tls",
            "none",
        ];
        args.extend_from_slice(gateway_args);
        let gw = Gateway::start(root.path(), &main.url(), &main.token_file(), &args);
        // `deliver` runs as nobody: it goes through the data directory and the
        // spool (created 0700) and writes into the spool's tmp/ and queue/.
        for (sub, mode) in [
            ("", 0o711),
            ("spool", 0o711),
            ("spool/tmp", 0o777),
            ("spool/queue", 0o777),
        ] {
            std::fs::set_permissions(gw.data_dir.join(sub), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
        let postfix = Postfix::start(&root.path().join("postfix"), port, &gateway, &gw.data_dir);
        crate::helpers::wait_for("Postfix to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        ThroughPostfix {
            root,
            main,
            gw,
            postfix,
            port,
        }
    }

    fn send(&self, mail: &str) {
        send_mail(
            format!("127.0.0.1:{}", self.port).parse().unwrap(),
            OPS,
            mail,
        );
    }

    /// The first mail in the customer's Maildir.
    fn first_reply(&self) -> Vec<u8> {
        let inbox = self.root.path().join("postfix/mail/acme/new");
        let found = test_harness::wait_until("a reply in the customer's Maildir", DEADLINE, || {
            std::fs::read_dir(&inbox)
                .ok()
                .and_then(|mut entries| entries.next())
                .and_then(Result::ok)
                .map(|entry| entry.path())
        });
        let file = found.unwrap_or_else(|e| {
            panic!(
                "{e}; Postfix log:\n{}\ngateway status: {}",
                self.postfix.log(),
                self.gw.status()
            )
        });
        std::fs::read(&file).unwrap()
    }
}

#[test]
fn a_sync_mail_through_postfix_is_answered_into_the_customers_maildir() {
    if !postfix_available() {
        eprintln!("SKIPPED postfix interop: /usr/sbin/postfix missing or not root (install Debian's postfix and run as root)");
        return;
    }
    let setup = ThroughPostfix::start(&[]);
    let (_, server_id) = setup.main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    setup.send(&sync_mail(
        OPS,
        "via-postfix@acme.example",
        &sync_data(&identity, server_id),
    ));

    let raw = setup.first_reply();
    let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
    use mail_parser::MimeHeaders;
    assert_eq!(
        message.in_reply_to().as_text(),
        Some("via-postfix@acme.example")
    );
    // The reply went out with a null envelope sender (RFC 3834).
    assert_eq!(message.header_raw("Return-Path").map(str::trim), Some("<>"));
    let attachment = message.attachments().next().unwrap();
    assert_eq!(
        attachment.attachment_name(),
        Some(format!("license-{server_id}.lic").as_str())
    );
    let text = String::from_utf8_lossy(attachment.contents());
    let file =
        shared_proto::license_file::open(&text, &identity, &setup.main.solme_key(), server_id)
            .unwrap();
    assert_eq!(file.server_id, server_id);
    let log = setup.postfix.log();
    assert!(log.contains("relay=solmegw"), "{log}");
}

/// The `header_checks` line of the README removes a sender's copies of our MTA's
/// `Authentication-Results`, however written, so a forged "dmarc=pass" does not
/// reach the gateway.
#[test]
fn postfix_strips_a_forged_authentication_results_of_its_own_authserv_id() {
    if !postfix_available() {
        eprintln!("SKIPPED postfix interop: /usr/sbin/postfix missing or not root (install Debian's postfix and run as root)");
        return;
    }
    let setup = ThroughPostfix::start(&["--authserv-id", "mx.solme.example"]);
    let (_, server_id) = setup.main.customer_with_server(&[OPS]);
    // The plain copy, and one whose authserv-id only a reader of RFC 8601's grammar
    // (comments, quoted strings) sees as ours: no pattern for the id can catch both.
    let mail = format!(
        "Authentication-Results: mx.solme.example; dmarc=pass header.from=acme.example\r\n\
         authentication-results: (trust me) MX.\"solme\".example;\r\n dmarc=pass\r\n{}",
        crate::helpers::text_mail(
            OPS,
            "forged@acme.example",
            &format!("Please clear {server_id}"),
            "",
            "We reinstalled.",
        )
    );
    setup.send(&mail);
    let raw = setup.first_reply();
    assert!(
        String::from_utf8_lossy(&raw).contains("we have received your request"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let (_, pending) = setup
        .main
        .admin("GET", "/admin/v1/key-clear-requests?status=pending", None);
    assert_eq!(pending[0]["sender_auth"], "not checked", "{pending}");
    assert_eq!(
        pending[0]["sender_auth_detail"],
        "no Authentication-Results header of mx.solme.example"
    );
}
