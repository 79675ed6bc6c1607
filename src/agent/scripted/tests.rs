use super::*;

fn call() -> CallIds {
    CallIds {
        call_sid: "CAtest".into(),
        stream_sid: "MZtest".into(),
    }
}

/// All events of one turn (the channel is filled before `respond` returns).
fn turn(s: &mut Box<dyn AgentSession>, turn: CallerTurn) -> Vec<AgentEvent> {
    let mut rx = s.respond(turn, CancellationToken::new());
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        out.push(ev);
    }
    out
}

fn keys(s: &mut Box<dyn AgentSession>, k: &str) -> Vec<AgentEvent> {
    turn(s, CallerTurn::Dtmf(k.into()))
}

fn say(s: &mut Box<dyn AgentSession>, t: &str) -> Vec<AgentEvent> {
    turn(s, CallerTurn::Speech(t.into()))
}

fn texts(pieces: &[&str]) -> Vec<AgentEvent> {
    let mut out: Vec<AgentEvent> = pieces
        .iter()
        .map(|p| AgentEvent::Text(p.to_string()))
        .collect();
    out.push(AgentEvent::Done);
    out
}

fn with_action(pieces: &[&str], action: CallAction) -> Vec<AgentEvent> {
    let mut out = texts(pieces);
    out.insert(pieces.len(), AgentEvent::Action(action));
    out
}

#[test]
fn demo_greets_once_then_takes_an_order_by_keys() {
    let agent = ScriptedAgent::demo();
    assert_eq!(agent.name(), "scripted");
    let mut s = agent.start_call(&call());
    let greeting = s.greeting().unwrap();
    assert!(
        greeting.starts_with("Hello, thanks for calling."),
        "{greeting}"
    );
    assert_eq!(s.greeting(), None);
    assert_eq!(
        keys(&mut s, "1"),
        texts(&["Sure.", "Please say or key in your order number."])
    );
    let mut confirmed = with_action(
        &[
            "Thank you.",
            "Your order 1 2 3 4 5 will arrive tomorrow.",
            "Goodbye.",
        ],
        CallAction::EndCall,
    );
    confirmed.insert(0, AgentEvent::Outcome("order_checked".into()));
    assert_eq!(keys(&mut s, "12345#"), confirmed);
}

#[test]
fn demo_by_speech_with_keywords_and_spoken_digits() {
    let mut s = ScriptedAgent::demo().start_call(&call());
    assert_eq!(
        say(&mut s, "I'd like to check my ORDER, please.")[0],
        AgentEvent::Text("Sure.".into())
    );
    assert_eq!(
        say(&mut s, "It is 98 76.")[2],
        AgentEvent::Text("Your order 9 8 7 6 will arrive tomorrow.".into())
    );

    let mut s = ScriptedAgent::demo().start_call(&call());
    let transfer = CallAction::Transfer {
        to: DEMO_TRANSFER_TO.into(),
    };
    assert_eq!(
        say(&mut s, "Can I talk to a human?"),
        with_action(&["Transferring you now."], transfer.clone())
    );

    let mut s = ScriptedAgent::demo().start_call(&call());
    assert_eq!(
        say(&mut s, "2"),
        with_action(&["Transferring you now."], transfer)
    );
}

#[test]
fn no_match_says_the_fallback_and_stays() {
    let mut s = ScriptedAgent::demo().start_call(&call());
    let events = say(&mut s, "reorder the weather");
    assert_eq!(
        events[0],
        AgentEvent::Text("Sorry, I did not catch that.".into()),
        "whole words only"
    );
    assert_eq!(events.last(), Some(&AgentEvent::Done));
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Action(_))));
    assert_eq!(keys(&mut s, "9"), events, "unknown keys: same fallback");
    assert_eq!(
        keys(&mut s, "1")[0],
        AgentEvent::Text("Sure.".into()),
        "still in the menu"
    );
    assert_eq!(
        say(&mut s, "no idea")[0],
        AgentEvent::Text("Sorry, I need the digits of your order number.".into())
    );
}

#[test]
fn audio_turns_are_ignored() {
    let mut s = ScriptedAgent::demo().start_call(&call());
    let audio = CallerTurn::Audio(bytes::Bytes::from_static(&[0xff; 160]));
    assert_eq!(turn(&mut s, audio), vec![AgentEvent::Done]);
    assert_eq!(keys(&mut s, "1")[0], AgentEvent::Text("Sure.".into()));
}

const PREFIX_FLOW: &str = r#"
start = "a"
[states.a]
say = "Choose."
[[states.a.on]]
dtmf = "1"
to = "one"
[[states.a.on]]
dtmf = "12"
to = "twelve"
[[states.a.on]]
keywords = ["talk to someone"]
to = "one"
[states.one]
say = "One."
[states.twelve]
say = "Twelve."
"#;

#[test]
fn dtmf_exact_then_longest_prefix_and_phrase_keywords() {
    let agent = ScriptedAgent::from_toml(PREFIX_FLOW).unwrap();
    let next = |t: CallerTurn| {
        let mut s = agent.start_call(&call());
        turn(&mut s, t)
    };
    assert_eq!(next(CallerTurn::Dtmf("1".into())), texts(&["One."]));
    assert_eq!(next(CallerTurn::Dtmf("12".into())), texts(&["Twelve."]));
    assert_eq!(next(CallerTurn::Dtmf("12#".into())), texts(&["Twelve."]));
    assert_eq!(next(CallerTurn::Dtmf("13".into())), texts(&["One."]));
    assert_eq!(
        next(CallerTurn::Dtmf("3".into())),
        texts(&["Choose."]),
        "no fallback: say again"
    );
    assert_eq!(
        next(CallerTurn::Speech("I want to talk to someone now".into())),
        texts(&["One."])
    );
    assert_eq!(
        next(CallerTurn::Speech("someone to talk to".into())),
        texts(&["Choose."])
    );
}

#[test]
fn the_same_turns_give_the_same_replies() {
    let agent = ScriptedAgent::demo();
    let run = || {
        let mut s = agent.start_call(&call());
        let mut all = vec![s.greeting().map(AgentEvent::Text)];
        for t in ["hmm", "order", "123"] {
            all.extend(say(&mut s, t).into_iter().map(Some));
        }
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn demo_flow_is_valid_and_fits_the_event_queue() {
    let agent = ScriptedAgent::from_toml(DEMO_FLOW).unwrap();
    for state in agent.flow.states.values() {
        // Pieces, outcome, action, done.
        assert!(pieces(&state.say).len() + 3 <= crate::agent::EVENT_QUEUE);
    }
    assert_eq!(
        agent.flow.states["agent"].transfer.as_deref(),
        Some(DEMO_TRANSFER_TO)
    );
}

#[test]
fn validation_errors_name_the_state() {
    let err = |toml: &str| ScriptedAgent::from_toml(toml).unwrap_err();
    assert_eq!(err(r#"start = "x""#), FlowError::MissingStart("x".into()));
    assert_eq!(
        err("start = \"x\"\n[states.y]\nsay = \"\""),
        FlowError::MissingStart("x".into())
    );
    let e = err(
        "start = \"a\"\n[states.a]\nsay = \"hi\"\n[[states.a.on]]\ndtmf = \"1\"\nto = \"nowhere\"",
    );
    assert_eq!(
        e,
        FlowError::UnknownTarget {
            state: "a".into(),
            index: 0,
            to: "nowhere".into()
        }
    );
    assert!(e.to_string().contains("state `a`") && e.to_string().contains("`nowhere`"));
    let e = err("start = \"a\"\n[states.a]\nsay = \"hi\"\n[[states.a.on]]\nto = \"a\"");
    assert_eq!(
        e,
        FlowError::EmptyTransition {
            state: "a".into(),
            index: 0
        }
    );
    let e = err(
        "start = \"a\"\n[states.a]\nsay = \"hi\"\n[[states.a.on]]\nkeywords = [\" \"]\nto = \"a\"",
    );
    assert_eq!(
        e,
        FlowError::EmptyKeyword {
            state: "a".into(),
            index: 0
        }
    );
    let e =
        err("start = \"a\"\n[states.a]\nsay = \"hi\"\n[[states.a.on]]\ndtmf = \"1a\"\nto = \"a\"");
    assert_eq!(
        e,
        FlowError::BadDtmf {
            state: "a".into(),
            dtmf: "1a".into()
        }
    );
    let base = "start = \"a\"\n[states.a]\nsay = \"hi\"\n[states.b]\nsay = \"bye\"\n";
    let e = err(&format!("{base}transfer = \"555\""));
    assert_eq!(
        e,
        FlowError::BadTransfer {
            state: "b".into(),
            number: "555".into()
        }
    );
    let e = err(&format!("{base}transfer = \"+15550100\"\nend = true"));
    assert_eq!(e, FlowError::EndAndTransfer("b".into()));
    let e = err("start = \"a\"\n[states.a]\nsay = \"hi\"\nend = true");
    assert_eq!(e, FlowError::StartHasAction("a".into()));
    assert!(matches!(
        err("start = \"a\"\n[states.a]\nsey = \"typo\""),
        FlowError::Toml(_)
    ));
}

#[test]
fn a_state_records_its_outcome_and_an_opt_out_state_hangs_up() {
    let flow = r#"
start = "ask"
[states.ask]
say = "Would you like a quote?"
[[states.ask.on]]
keywords = ["yes"]
to = "yes"
[[states.ask.on]]
keywords = ["stop calling", "remove me"]
to = "stop"
[states.yes]
say = "Great. Someone will call you back."
outcome = "interested"
[[states.yes.on]]
keywords = ["thanks"]
to = "ask"
[states.stop]
say = "Understood. Goodbye."
opt_out = true
"#;
    let agent = ScriptedAgent::from_toml(flow).unwrap();
    let mut s = agent.start_call(&call());
    assert_eq!(s.greeting().as_deref(), Some("Would you like a quote?"));
    assert_eq!(say(&mut s, "hmm"), texts(&["Would you like a quote?"]));
    let mut yes = texts(&["Great.", "Someone will call you back."]);
    yes.insert(0, AgentEvent::Outcome("interested".into()));
    assert_eq!(say(&mut s, "Yes please"), yes);
    // A state without an outcome records none.
    assert_eq!(say(&mut s, "thanks"), texts(&["Would you like a quote?"]));
    let mut stop = with_action(&["Understood.", "Goodbye."], CallAction::EndCall);
    stop.insert(
        0,
        AgentEvent::Outcome(crate::dialer::model::OPTED_OUT.into()),
    );
    assert_eq!(say(&mut s, "Please stop calling me"), stop);

    // The demo flow opts out too.
    let mut s = ScriptedAgent::demo().start_call(&call());
    let events = say(&mut s, "remove me from your list");
    assert_eq!(events[0], AgentEvent::Outcome("opted_out".into()));
    assert!(events.contains(&AgentEvent::Action(CallAction::EndCall)));
}

#[test]
fn outcome_and_opt_out_are_validated() {
    let err = |toml: &str| ScriptedAgent::from_toml(toml).unwrap_err();
    let base = "start = \"a\"\n[states.a]\nsay = \"hi\"\n[states.b]\nsay = \"bye\"\n";
    for bad in ["Interested", "", "not interested", "a;b"] {
        let e = err(&format!("{base}outcome = \"{bad}\""));
        assert_eq!(
            e,
            FlowError::BadOutcome {
                state: "b".into(),
                outcome: bad.into()
            }
        );
        assert!(e.to_string().contains("state `b`"));
    }
    let long = "x".repeat(65);
    assert!(matches!(
        err(&format!("{base}outcome = \"{long}\"")),
        FlowError::BadOutcome { .. }
    ));
    assert_eq!(
        err(&format!("{base}opt_out = true\noutcome = \"interested\"")),
        FlowError::OptOutConflict("b".into())
    );
    assert_eq!(
        err(&format!("{base}opt_out = true\ntransfer = \"+15550100\"")),
        FlowError::OptOutConflict("b".into())
    );
    for start in ["outcome = \"interested\"", "opt_out = true"] {
        assert_eq!(
            err(&format!("start = \"a\"\n[states.a]\nsay = \"hi\"\n{start}")),
            FlowError::StartHasAction("a".into())
        );
    }
    assert!(
        ScriptedAgent::from_toml(&format!(
            "{base}outcome = \"callback_requested\"\nend = true"
        ))
        .is_ok()
    );
}

#[test]
fn from_file_reads_and_reports_the_path() {
    let dir = std::env::temp_dir().join(format!("voxbridge-flow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flow.toml");
    std::fs::write(&path, PREFIX_FLOW).unwrap();
    let mut s = ScriptedAgent::from_file(&path).unwrap().start_call(&call());
    assert_eq!(s.greeting().as_deref(), Some("Choose."));
    let missing = dir.join("missing.toml");
    match ScriptedAgent::from_file(&missing) {
        Err(FlowError::Read { path, .. }) => assert!(path.ends_with("missing.toml")),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
