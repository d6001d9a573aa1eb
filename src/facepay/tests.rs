use super::*;
use crate::runtime::Ack;

const SECRET: &[u8] = b"face desk test secret";

fn unit(seed: u32) -> [f32; EMBEDDING_DIM] {
    let mut v = [0f32; EMBEDDING_DIM];
    for (i, x) in v.iter_mut().enumerate() {
        *x = ((i as u32 * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5;
    }
    crate::face::matcher::normalize(&mut v);
    v
}

fn near(base: &[f32; EMBEDDING_DIM], k: usize) -> [f32; EMBEDDING_DIM] {
    let mut v = *base;
    v[k] += 0.05;
    crate::face::matcher::normalize(&mut v);
    v
}

fn ready_desk(dir: &std::path::Path) -> FaceDesk {
    let desk = FaceDesk::open(
        FacePayConfig::default(),
        dir.join("gallery.bin"),
        SECRET,
        &BTreeMap::new(),
    );
    desk.lock().models_loaded = true;
    desk
}

#[test]
fn enrolment_needs_consent_a_name_and_a_ready_desk() {
    let dir = tempfile::tempdir().expect("tmp");
    let desk = FaceDesk::open(
        FacePayConfig::default(),
        dir.path().join("gallery.bin"),
        SECRET,
        &BTreeMap::new(),
    );
    // Models not loaded yet.
    assert_eq!(
        desk.start_enrol(true, "Alice").err().map(|e| e.code),
        Some("face_unavailable")
    );
    desk.lock().models_loaded = true;
    assert_eq!(
        desk.start_enrol(false, "Alice").err().map(|e| e.code),
        Some("consent_required")
    );
    for name in ["", "   ", "a\u{7}b", &"x".repeat(41)] {
        assert_eq!(
            desk.start_enrol(true, name).err().map(|e| e.code),
            Some("bad_name"),
            "{name:?}"
        );
    }
    assert!(desk.status().task.is_none(), "refusals start nothing");
    let v = desk.start_enrol(true, "Alice").expect("starts");
    assert_eq!(v.step, TaskStep::AwaitingProof);
    assert_eq!(v.masked_name.as_deref(), Some("A***e"));
    assert_eq!(v.need, 3);
    assert_eq!(
        desk.start_erase().err().map(|e| e.code),
        Some("busy"),
        "one task at a time"
    );
    assert!(desk.cancel());
    assert!(!desk.cancel());
    assert!(desk.start_erase().is_ok());
}

#[test]
fn a_credential_is_taken_as_proof_only_while_a_task_waits_for_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let desk = ready_desk(dir.path());
    assert!(!desk.offer_proof(PaymentMethod::Card, "tok"), "no task");
    desk.start_enrol(true, "Bob").expect("starts");
    assert!(desk.awaiting_proof());
    assert!(!desk.capturing());
    assert!(desk.offer_proof(PaymentMethod::Card, "tok"));
    assert!(!desk.awaiting_proof());
    assert!(desk.capturing(), "next: look at the camera");
    assert!(
        !desk.offer_proof(PaymentMethod::PayCode, "other"),
        "a second credential is not taken"
    );
    desk.cancel();
    desk.start_erase().expect("starts");
    assert!(desk.offer_proof(PaymentMethod::PayCode, "tok"));
    assert_eq!(
        desk.status().task.map(|t| t.step),
        Some(TaskStep::Saving),
        "erasure needs no camera"
    );
}

#[test]
fn start_up_erases_gallery_entries_the_journal_does_not_list() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gallery.bin");
    let mut g = Gallery::load(&path, SECRET).expect("new gallery");
    for (id, seed) in [("acct-kept", 1), ("acct-erased", 2)] {
        let b = unit(seed);
        g.enrol(id, "X***y", &[b, near(&b, 3), near(&b, 9)])
            .expect("enrol");
    }
    drop(g);
    let mut journal = BTreeMap::new();
    journal.insert("acct-kept".to_string(), "X***y".to_string());
    let desk = FaceDesk::open(FacePayConfig::default(), path.clone(), SECRET, &journal);
    assert_eq!(desk.status().enrolled, 1);
    let reopened = Gallery::load(&path, SECRET).expect("reopen");
    let ids: Vec<&str> = reopened.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["acct-kept"], "the erasure reached the file");
    // The desk's matcher holds the kept face only.
    let m = desk
        .lock()
        .matcher
        .best_two(&unit(1))
        .0
        .map(|(id, _)| id.to_string());
    assert_eq!(m.as_deref(), Some("acct-kept"));
    desk.erase("acct-kept");
    assert_eq!(desk.status().enrolled, 0);
    assert!(desk.lock().matcher.is_empty());
}

#[test]
fn a_gallery_sealed_with_another_key_leaves_face_pay_off_and_the_file_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("gallery.bin");
    let mut g = Gallery::load(&path, b"another machine").expect("new");
    let b = unit(5);
    g.enrol("acct", "A***b", &[b, near(&b, 1), near(&b, 2)])
        .expect("enrol");
    let before = std::fs::read(&path).expect("read");
    let desk = FaceDesk::open(
        FacePayConfig::default(),
        path.clone(),
        SECRET,
        &BTreeMap::new(),
    );
    desk.lock().models_loaded = true;
    let s = desk.status();
    assert!(!s.available);
    assert!(s.problem.expect("problem").contains("gallery"));
    assert_eq!(
        desk.start_enrol(true, "Ann").err().map(|e| e.code),
        Some("face_unavailable")
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

/// A stand-in for the core loop: answers each request with `answer`.
fn fake_core(answer: Result<(), Reject>) -> (mpsc::Sender<Request>, JoinHandle<Vec<Input>>) {
    let (tx, mut rx) = mpsc::channel::<Request>(4);
    let t = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(r) = rx.blocking_recv() {
            got.push(r.input);
            if let Some(reply) = r.reply {
                let _ = reply.send(answer.clone().map(|()| Ack { seq: 1 }));
            }
        }
        got
    });
    (tx, t)
}

#[test]
fn kiosk_erasure_journals_the_shoppers_erasure_and_reports_the_outcome() {
    let dir = tempfile::tempdir().expect("tmp");
    let desk = ready_desk(dir.path());
    desk.start_erase().expect("starts");
    assert!(desk.offer_proof(PaymentMethod::Card, "acct-1"));
    let (tx, core) = fake_core(Ok(()));
    finish_erase(&desk, &tx);
    drop(tx);
    let inputs = core.join().expect("core");
    assert_eq!(
        inputs,
        vec![Input::FaceErased {
            account: "acct-1".into(),
            by: EraseBy::Shopper
        }]
    );
    let t = desk.status().task.expect("task");
    assert_eq!((t.step, t.erased), (TaskStep::Done, Some(true)));

    // Nothing enrolled for that card: done, nothing erased.
    desk.start_erase().expect("starts again");
    assert!(desk.offer_proof(PaymentMethod::Card, "acct-2"));
    let (tx, core) = fake_core(Err(Reject::new("not_enrolled", "none")));
    finish_erase(&desk, &tx);
    drop(tx);
    core.join().expect("core");
    let t = desk.status().task.expect("task");
    assert_eq!((t.step, t.erased), (TaskStep::Done, Some(false)));
}

#[test]
fn an_unfinished_task_times_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let desk = ready_desk(dir.path());
    desk.start_enrol(true, "Carol").expect("starts");
    expire_task(&desk);
    assert_eq!(
        desk.status().task.map(|t| t.step),
        Some(TaskStep::AwaitingProof)
    );
    desk.lock().task.as_mut().expect("task").started_ms -= 61_000;
    expire_task(&desk);
    let t = desk.status().task.expect("task");
    assert_eq!(t.step, TaskStep::Failed);
    assert_eq!(t.error.map(|e| e.0).as_deref(), Some("timed_out"));
    assert!(!desk.awaiting_proof(), "a failed task takes no card");
}
