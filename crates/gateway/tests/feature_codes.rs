//! Operators' feature codes over UDP on 127.0.0.1: op1's softphone registers with digest,
//! dials `*1`, `*31`, `*4`, `*2`; each is challenged, carried out through the operator book
//! and the ACD, answered with a confirmation prompt (RTP) and hung up by the gateway. An
//! unknown code gets 404, wrong credentials 403, and a command the book refuses is answered
//! with the "not done" prompt and leaves the ACD as it was.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acd::{OperatorState, PauseReason};
use gateway::{
    FeatureCodes, FeaturePrompts, Gateway, NoCallLog, OperatorBook, OperatorCommand,
    OperatorControl, OperatorControlError, OperatorRefusal, Settings, Stats,
};
use media::prompts::{Prompt, PromptCache, PromptName};
use sip::{HeaderName, Message, Method, Request, Response};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(3);

static NEXT: AtomicU64 = AtomicU64::new(1);
fn unique() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A book that keeps who is logged in and paused, refuses what does not apply, and remembers
/// every command it took.
#[derive(Default)]
struct Book {
    /// operator → paused?
    state: Mutex<std::collections::HashMap<String, bool>>,
    taken: Mutex<Vec<(String, OperatorCommand)>>,
    /// `queues_changed` calls: (operator, queues).
    requeued: Mutex<Vec<(String, Vec<String>)>>,
}

impl OperatorBook for Book {
    fn apply(&self, operator: &str, cmd: &OperatorCommand) -> Result<(), OperatorRefusal> {
        let mut st = self.state.lock().unwrap();
        let refuse = |state: &'static str| OperatorRefusal::WrongState {
            operator: operator.into(),
            state,
            action: "that",
        };
        match (st.get(operator).copied(), cmd) {
            (None, OperatorCommand::Login { .. }) => {
                st.insert(operator.into(), false);
            }
            (Some(_), OperatorCommand::Logout) => {
                st.remove(operator);
            }
            (Some(false), OperatorCommand::Pause { .. }) => {
                st.insert(operator.into(), true);
            }
            (Some(true), OperatorCommand::Unpause) => {
                st.insert(operator.into(), false);
            }
            (None, _) => return Err(refuse("logged_out")),
            (Some(false), _) => return Err(refuse("available")),
            (Some(true), _) => return Err(refuse("paused")),
        }
        self.taken
            .lock()
            .unwrap()
            .push((operator.into(), cmd.clone()));
        Ok(())
    }

    fn queues_changed(&self, operator: &str, queues: &[String]) {
        self.requeued
            .lock()
            .unwrap()
            .push((operator.into(), queues.to_vec()));
    }
}

fn prompt(name: &str) -> Arc<Prompt> {
    let encoders = media::prompts::G711;
    // 200 ms of a tone
    let pcm: Vec<i16> = (0..1600)
        .map(|n| (6000.0 * (n as f64 * 0.3).sin()) as i16)
        .collect();
    Arc::new(Prompt::from_pcm(PromptName::new(name), &pcm, &encoders))
}

fn settings() -> Settings {
    let names = ["op/in", "op/out", "op/paused", "op/unpaused", "op/refused"];
    let pcmu = &media::prompts::G711[..1];
    Settings {
        t1: Duration::from_millis(50),
        operators: test_support::operators(&["op1"]),
        rtp_ports: (0, 0),
        rtp_timeout: None,
        prompts: Arc::new(PromptCache::from_prompts(
            names.iter().map(|n| prompt(n)),
            pcmu,
        )),
        recordings_dir: std::env::temp_dir().join("hotline-feature-tests-unused"),
        max_call: Duration::from_secs(60),
        acd: Some(acd::AcdConfig {
            queues: vec![acd::QueueConfig::new("benefits")],
            operators: vec![acd::OperatorConfig::new("op1", [("benefits", 1)])],
        }),
        feature_codes: FeatureCodes {
            pause_reasons: vec![
                ("1".into(), "break".into()),
                ("2".into(), "paperwork".into()),
            ],
            prompts: FeaturePrompts {
                logged_in: Some(PromptName::new("op/in")),
                logged_out: Some(PromptName::new("op/out")),
                paused: Some(PromptName::new("op/paused")),
                unpaused: Some(PromptName::new("op/unpaused")),
                refused: Some(PromptName::new("op/refused")),
            },
            ..FeatureCodes::default()
        },
        ..test_support::settings()
    }
}

/// Free even RTP ports for a few calls.
fn free_range() -> (u16, u16) {
    loop {
        let base = (40_000 + (unique() as u16 * 37 + std::process::id() as u16 % 500) * 8) & !1;
        if (base..base + 8).all(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return (base, base + 7);
        }
    }
}

/// op1's softphone.
struct Phone {
    sip: UdpSocket,
    rtp: UdpSocket,
    server: SocketAddr,
}

impl Phone {
    async fn new(server: SocketAddr) -> Phone {
        Phone {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    async fn send(&self, text: &str) {
        self.sip
            .send_to(text.as_bytes(), self.server)
            .await
            .unwrap();
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(WAIT, self.sip.recv_from(&mut buf))
            .await
            .expect("a SIP message from the gateway")
            .unwrap();
        sip::parse_message(&buf[..n]).unwrap()
    }

    async fn final_response(&self) -> Response {
        loop {
            match self.recv().await {
                Message::Response(r) if r.status >= 200 => return r,
                Message::Response(_) => {}
                Message::Request(r) => panic!("unexpected {} from the gateway", r.method),
            }
        }
    }

    async fn request(&self) -> Request {
        loop {
            if let Message::Request(r) = self.recv().await {
                return r;
            }
        }
    }

    fn challenge(r: &Response) -> String {
        r.headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap()
            .to_string()
    }

    async fn register(&self) {
        let call_id = format!("reg-{}", unique());
        let reg = test_support::Register::udp("op1", self.sip.local_addr().unwrap(), &call_id);
        self.send(&reg.text(1, &format!("-r{}", unique()), None))
            .await;
        let ch = self.final_response().await;
        assert_eq!(ch.status, 401);
        let auth = test_support::digest_for(&ch, "op1");
        self.send(&reg.text(2, &format!("-r{}", unique()), Some(&auth)))
            .await;
        assert_eq!(self.final_response().await.status, 200);
    }

    /// Dials `code` as `user`/`password`: INVITE, the 401 (ACKed), INVITE with the digest.
    /// On a 200: ACK, at least one RTP packet of the confirmation, the gateway's BYE (200).
    /// Returns the final status of the authenticated INVITE.
    async fn dial(&self, code: &str, user: &str, password: &str) -> u16 {
        let me = self.sip.local_addr().unwrap();
        let call_id = format!("fc-{}", unique());
        let uri = format!("sip:{code}@{}", self.server);
        let rtp = self.rtp.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        );
        let invite = |cseq: u32, branch: &str, auth: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@hotline>;tag=f{call_id}\r\n\
                 To: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
                 Contact: <sip:{user}@{me}>\r\n{auth}Content-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        let ack = |cseq: u32, branch: &str, to: &str| {
            format!(
                "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@hotline>;tag=f{call_id}\r\n\
                 To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let b1 = format!("z9hG4bK-a{}", unique());
        self.send(&invite(1, &b1, "")).await;
        let ch = self.final_response().await;
        assert_eq!(ch.status, 401, "a feature code needs credentials");
        self.send(&ack(1, &b1, ch.headers.get(&HeaderName::To).unwrap()))
            .await;
        let auth = sip::auth::authorization_for(
            &Self::challenge(&ch),
            &Method::Invite,
            &uri,
            user,
            password,
            "c2",
            1,
        )
        .unwrap();
        let b2 = format!("z9hG4bK-b{}", unique());
        self.send(&invite(2, &b2, &format!("Authorization: {auth}\r\n")))
            .await;
        let r = self.final_response().await;
        let to = r.headers.get(&HeaderName::To).unwrap().to_string();
        if r.status != 200 {
            self.send(&ack(2, &b2, &to)).await;
            return r.status;
        }
        self.send(&ack(2, &format!("z9hG4bK-c{}", unique()), &to))
            .await;
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(WAIT, self.rtp.recv_from(&mut buf))
            .await
            .expect("the confirmation prompt")
            .unwrap();
        assert!(n > 12, "an RTP packet");
        let bye = self.request().await;
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.headers.call_id().unwrap(), call_id);
        let mut ok = bye.response(200);
        ok.headers.set(HeaderName::ContentLength, "0");
        self.sip.send_to(&ok.to_bytes(), self.server).await.unwrap();
        200
    }
}

async fn state(ops: &OperatorControl) -> OperatorState {
    ops.status("op1").await.unwrap().unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_pauses_and_resumes_from_the_softphone() {
    let mut s = settings();
    s.rtp_ports = free_range();
    let book = Arc::new(Book::default());
    let gw = Gateway::bind(s, Arc::new(Stats::default()), Arc::new(NoCallLog))
        .await
        .unwrap()
        .with_operator_book(book.clone());
    let addr = gw.local_addrs()[0];
    let ops = gw.operators();
    let stop = CancellationToken::new();
    let run = tokio::spawn(gw.run(stop.clone()));

    let phone = Phone::new(addr).await;
    phone.register().await;
    assert_eq!(state(&ops).await, OperatorState::LoggedOut);

    assert_eq!(phone.dial("*1", "op1", "op1-secret").await, 200);
    assert_eq!(state(&ops).await, OperatorState::Available);
    assert!(ops.status("op1").await.unwrap().unwrap().registered);

    assert_eq!(phone.dial("*31", "op1", "op1-secret").await, 200);
    assert_eq!(
        state(&ops).await,
        OperatorState::Paused(PauseReason::Requested("break".into()))
    );

    // a second pause is refused by the book: answered with the "not done" prompt, the
    // reason in the ACD stays the first one
    assert_eq!(phone.dial("*32", "op1", "op1-secret").await, 200);
    assert_eq!(
        state(&ops).await,
        OperatorState::Paused(PauseReason::Requested("break".into()))
    );

    assert_eq!(phone.dial("*4", "op1", "op1-secret").await, 200);
    assert_eq!(state(&ops).await, OperatorState::Available);

    // unknown code, unknown reason: 404 once authenticated; wrong password: 403
    assert_eq!(phone.dial("*9", "op1", "op1-secret").await, 404);
    assert_eq!(phone.dial("*38", "op1", "op1-secret").await, 404);
    assert_eq!(phone.dial("*2", "op1", "guess").await, 403);
    assert_eq!(phone.dial("*2", "stranger", "x").await, 403);
    assert_eq!(state(&ops).await, OperatorState::Available);

    assert_eq!(phone.dial("*2", "op1", "op1-secret").await, 200);
    assert_eq!(state(&ops).await, OperatorState::LoggedOut);

    // a login naming a queue outside the skills is refused by the ACD before the book
    assert_eq!(
        ops.apply(
            "op1",
            OperatorCommand::Login {
                queues: vec!["elsewhere".into()]
            }
        )
        .await,
        Err(OperatorControlError::Acd(acd::AcdError::UnknownQueue(
            "elsewhere".into()
        )))
    );
    assert_eq!(state(&ops).await, OperatorState::LoggedOut);

    // the book saw exactly the commands that were carried out, in order
    let taken: Vec<OperatorCommand> = book
        .taken
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(
        taken,
        vec![
            // `*1` names no queues: the ACD resolved them to the skills before the book
            OperatorCommand::Login {
                queues: vec!["benefits".into()]
            },
            OperatorCommand::Pause {
                reason: "break".into()
            },
            OperatorCommand::Unpause,
            OperatorCommand::Logout,
        ]
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}

/// A restored book: the gateway applies its state to the ACD before the first message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_restored_state_reaches_the_acd_at_start() {
    #[derive(Default)]
    struct Restored(Mutex<Vec<(String, Vec<String>)>>);
    impl OperatorBook for Restored {
        fn apply(&self, _: &str, _: &OperatorCommand) -> Result<(), OperatorRefusal> {
            Ok(())
        }
        fn queues_changed(&self, operator: &str, queues: &[String]) {
            self.0
                .lock()
                .unwrap()
                .push((operator.into(), queues.to_vec()));
        }
        fn restored(&self) -> Vec<(String, OperatorCommand)> {
            vec![
                ("op1".into(), OperatorCommand::Login { queues: vec![] }),
                (
                    "op1".into(),
                    OperatorCommand::Pause {
                        reason: "paperwork".into(),
                    },
                ),
            ]
        }
    }
    let book = Arc::new(Restored::default());
    let mut s = settings();
    s.rtp_ports = free_range();
    let gw = Gateway::bind(s, Arc::new(Stats::default()), Arc::new(NoCallLog))
        .await
        .unwrap()
        .with_operator_book(book.clone());
    let ops = gw.operators();
    let stop = CancellationToken::new();
    let run = tokio::spawn(gw.run(stop.clone()));
    assert_eq!(
        state(&ops).await,
        OperatorState::Paused(PauseReason::Requested("paperwork".into()))
    );
    // the login was saved without queues (an older `*1`): the book hears the ones served
    assert_eq!(
        *book.0.lock().unwrap(),
        [("op1".to_owned(), vec!["benefits".to_owned()])]
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}

/// A reload's operators reach the running ACD: an added operator can log in and is known,
/// a removed one is gone, changed skills move a logged-in operator (and the book hears of
/// the new queues); the queues themselves stay as they are (restart-only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_removes_and_reskills_operators_in_the_acd() {
    let with_ops = |ops: Vec<acd::OperatorConfig>| {
        let mut s = settings();
        s.acd = Some(acd::AcdConfig {
            queues: vec![
                acd::QueueConfig::new("benefits"),
                acd::QueueConfig::new("rehab"),
            ],
            operators: ops,
        });
        s
    };
    let mut s = with_ops(vec![
        acd::OperatorConfig::new("op1", [("benefits", 1)]),
        acd::OperatorConfig::new("op2", [("benefits", 1)]),
    ]);
    s.rtp_ports = free_range();
    let book = Arc::new(Book::default());
    let gw = Gateway::bind(s.clone(), Arc::new(Stats::default()), Arc::new(NoCallLog))
        .await
        .unwrap()
        .with_operator_book(book.clone());
    let ops = gw.operators();
    let reloader = gw.reloader();
    let stop = CancellationToken::new();
    let run = tokio::spawn(gw.run(stop.clone()));
    ops.apply("op1", OperatorCommand::Login { queues: vec![] })
        .await
        .unwrap();
    assert_eq!(state(&ops).await, OperatorState::Available);
    assert!(ops.status("op3").await.unwrap().is_none());

    // op2 leaves, op3 arrives, op1 moves to rehab
    let mut next = with_ops(vec![
        acd::OperatorConfig::new("op1", [("rehab", 2)]),
        acd::OperatorConfig::new("op3", [("benefits", 1), ("rehab", 1)]),
    ]);
    next.rtp_ports = s.rtp_ports;
    assert_eq!(
        reloader.reload(next.clone()).await.unwrap(),
        Vec::<&str>::new()
    );
    assert!(ops.status("op2").await.unwrap().is_none(), "op2 removed");
    assert_eq!(
        ops.status("op3").await.unwrap().unwrap().state,
        OperatorState::LoggedOut
    );
    assert_eq!(state(&ops).await, OperatorState::Available);
    assert_eq!(
        *book.requeued.lock().unwrap(),
        [("op1".to_owned(), vec!["rehab".to_owned()])]
    );
    // the added operator logs in like any other, to its skill queues
    ops.apply("op3", OperatorCommand::Login { queues: vec![] })
        .await
        .unwrap();
    assert_eq!(
        book.taken.lock().unwrap().last().unwrap(),
        &(
            "op3".to_owned(),
            OperatorCommand::Login {
                queues: vec!["benefits".into(), "rehab".into()]
            }
        )
    );

    // a changed queue list needs a restart; operators' skills in unknown queues are dropped
    let mut queues_changed = next.clone();
    if let Some(a) = queues_changed.acd.as_mut() {
        a.queues.push(acd::QueueConfig::new("volunteers"));
        a.operators
            .push(acd::OperatorConfig::new("op4", [("volunteers", 1)]));
    }
    assert_eq!(
        reloader.reload(queues_changed).await.unwrap(),
        ["queues (ACD)"]
    );
    assert_eq!(
        ops.status("op4").await.unwrap().unwrap().state,
        OperatorState::LoggedOut
    );
    assert_eq!(
        ops.apply(
            "op4",
            OperatorCommand::Login {
                queues: vec!["volunteers".into()]
            }
        )
        .await,
        Err(OperatorControlError::Acd(acd::AcdError::UnknownQueue(
            "volunteers".into()
        )))
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}
