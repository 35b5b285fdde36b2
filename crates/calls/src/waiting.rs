//! What a caller hears and can do while waiting in a queue: the ACD's `Announce`,
//! `OfferCallback` and `Overflow` carried out on the caller's leg.
//!
//! - **Announcements** («Вы третий в очереди. Примерное время ожидания — пять минут», or
//!   «— более десяти минут» when the ACD cannot promise) replace the music on hold while they
//!   play; the music starts again after them. One that comes while the caller is busy with the
//!   callback offer is skipped (the ACD will announce again).
//! - **Callback**: once the ACD offers it (after the queue's `callback_after_seconds`, or on an
//!   overflow to `callback`), the offer is said and the key `1` works for the rest of the wait
//!   (later announcements repeat the offer). The caller's number is read back digit by digit:
//!   `1` books it, `2` asks for another number ending with `#`; a hidden or anonymous caller is
//!   asked for a number at once. A booked callback goes to the ACD
//!   (`Acd::callback_requested`, the place in line is kept), the appeal gets
//!   `callback_requested` (outcome `callback`), the closing prompt plays and the call ends
//!   without `caller_left`. No key in time, or `*`, goes back to the music.
//! - **Overflow to a message**: «Оставьте сообщение после сигнала», then the message is recorded
//!   by the same code as the voice menu's `message` node (outcome `message`).
//! - An operator who answers is connected at once: the bridge replaces whatever the leg plays
//!   (an announcement, a prompt of the callback dialogue) and the dialogue is dropped.
//!
//! [`Waiting`] is the sans-IO part (digits, playback ends and timeouts in, [`Do`] out); the
//! core carries its orders out on the media edge, the ACD and the call log (`core/queue.rs`).

use std::time::{Duration, Instant};

use acd::Estimate;
use media::numbers_ru;
use media::prompts::PromptName;

/// The prompts the waiting caller hears besides the Russian numbers
/// ([`media::numbers_ru::PIECES`]): name and file, relative to the Russian prompt folder
/// (`config/prompts/ru`). The daemon loads them into [`crate::Settings::prompts`] under these
/// names.
pub const WAITING_PROMPTS: &[(&str, &str)] = &[
    (ESTIMATED_WAIT, "queue/estimated-wait.wav"),
    (MORE_THAN, "queue/more-than.wav"),
    (CALLBACK_OFFER, "queue/callback-offer.wav"),
    (CALLBACK_INTRO, "common/callback-intro.wav"),
    (CALLBACK_CONFIRM, "common/callback-confirm.wav"),
    (CALLBACK_ENTER, "common/callback-enter.wav"),
    (CALLBACK_DONE, "common/callback-done.wav"),
    (LEAVE_MESSAGE, "common/leave-message.wav"),
];

/// «Примерное время ожидания».
pub const ESTIMATED_WAIT: &str = "queue/estimated-wait";
/// «более».
pub const MORE_THAN: &str = "queue/more-than";
/// «Чтобы мы перезвонили вам, не теряя места в очереди, нажмите один».
pub const CALLBACK_OFFER: &str = "queue/callback-offer";
/// «Мы перезвоним вам по номеру».
pub const CALLBACK_INTRO: &str = "common/callback-intro";
/// «Если номер верный, нажмите один. Другой номер — нажмите два».
pub const CALLBACK_CONFIRM: &str = "common/callback-confirm";
/// «Наберите номер телефона и нажмите решётку».
pub const CALLBACK_ENTER: &str = "common/callback-enter";
/// «Спасибо. Мы перезвоним вам в рабочее время. До свидания».
pub const CALLBACK_DONE: &str = "common/callback-done";
/// «Оставьте, пожалуйста, сообщение после сигнала».
pub const LEAVE_MESSAGE: &str = "common/leave-message";

/// How long a key is waited for after the number was read back or the caller asked to key one
/// in (the music comes back after it).
pub(crate) const KEY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between the digits of a keyed-in number.
pub(crate) const DIGIT_TIMEOUT: Duration = Duration::from_secs(6);
/// Fewest and most digits of a callback number (a city number has 7, a mobile 11).
pub(crate) const MIN_DIGITS: usize = 5;
pub(crate) const MAX_DIGITS: usize = 15;
/// Longest message left on an overflow to `message` (the menu's `message` node default).
pub(crate) const OVERFLOW_MESSAGE_MAX: Duration = Duration::from_secs(120);

fn name(s: &'static str) -> PromptName {
    PromptName::from_static(s)
}

/// The announcement of a place and an estimate, as prompt names: «вы третий в очереди»,
/// «примерное время ожидания», «пять минут» or «более» «десяти минут».
pub(crate) fn announcement(position: usize, wait: Estimate) -> Vec<PromptName> {
    let position = u32::try_from(position).unwrap_or(u32::MAX);
    let mut out = numbers_ru::position_phrase(position);
    out.push(name(ESTIMATED_WAIT));
    match wait {
        Estimate::Minutes(n) => out.extend(numbers_ru::minutes_phrase(n.max(1))),
        Estimate::MoreThan(n) => {
            out.push(name(MORE_THAN));
            out.extend(numbers_ru::more_than_minutes_phrase(n));
        }
    }
    out
}

/// A number a callback can be booked to: digits only (a leading `+` allowed), at least
/// [`MIN_DIGITS`] of them. Hidden callers (`anonymous`, `unknown`, empty) have none.
pub(crate) fn callback_number(caller: &str) -> Option<&str> {
    let digits = caller.strip_prefix('+').unwrap_or(caller);
    (digits.len() >= MIN_DIGITS
        && digits.len() <= MAX_DIGITS
        && digits.chars().all(|c| c.is_ascii_digit()))
    .then_some(caller)
}

/// The number read back: intro, one digit at a time, the confirm question.
fn read_back(number: &str) -> Vec<PromptName> {
    let mut out = vec![name(CALLBACK_INTRO)];
    out.extend(
        number
            .chars()
            .filter(char::is_ascii_digit)
            .map(|d| PromptName::new(format!("numbers/{d}"))),
    );
    out.push(name(CALLBACK_CONFIRM));
    out
}

/// What the waiting caller's leg is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Music on hold.
    Music,
    /// An announcement (or the callback offer) plays over the music's place; music after it.
    Speaking,
    /// The number is read back (or was): `1` books it, `2` asks for another.
    Confirm { number: String },
    /// The caller keys in a number ending with `#`.
    Enter { digits: String },
    /// The callback is booked; the closing prompt plays, then the call ends.
    Closing,
    /// «Оставьте сообщение»: the recording starts after it.
    LeaveMessage,
    /// A message is being recorded; nothing more to do here.
    Recording,
}

/// What the core must do for the waiting caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Do {
    /// Play these prompts (replacing what plays); report their end.
    Play(Vec<PromptName>),
    /// Silence at once (a key interrupted a prompt).
    Stop,
    /// The queue's music on hold again.
    Music,
    /// Book a callback to this number with the ACD, then [`Waiting::booked`] or
    /// [`Waiting::refused`].
    Book(String),
    /// Record the caller's message (the menu's `message` code path).
    Record,
    /// End the call (the callback is booked and the closing prompt was said).
    Hangup,
}

/// One waiting caller's side of the queue (sans-IO: time comes in as `now`).
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    phase: Phase,
    /// The ACD offered a callback: `1` books one from now on.
    callback: bool,
    /// The offer is said after the announcement playing now.
    offer_pending: bool,
    /// A prompt of the dialogue is playing (a key then interrupts it).
    playing: bool,
    /// When the dialogue gives up waiting for a key.
    deadline: Option<Instant>,
    /// The caller's own number, when it can be called back.
    own_number: Option<String>,
}

impl Waiting {
    /// A caller who just entered a queue (hearing its music), whose number is `caller`.
    pub(crate) fn new(caller: &str) -> Waiting {
        Waiting {
            phase: Phase::Music,
            callback: false,
            offer_pending: false,
            playing: false,
            deadline: None,
            own_number: callback_number(caller).map(str::to_owned),
        }
    }

    /// When [`Waiting::handle_timeout`] is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether a key press is the queue's to handle (not the voice menu's).
    pub(crate) fn takes_keys(&self) -> bool {
        !matches!(self.phase, Phase::Recording)
    }

    fn say(&mut self, phase: Phase, prompts: Vec<PromptName>) -> Do {
        self.phase = phase;
        self.playing = true;
        self.deadline = None;
        Do::Play(prompts)
    }

    fn music(&mut self) -> Do {
        self.phase = Phase::Music;
        self.playing = false;
        self.deadline = None;
        Do::Music
    }

    /// `Announce`: said at once over the music's place; skipped while the caller is in the
    /// callback dialogue or leaving a message. Once a callback is on offer, the offer follows.
    pub(crate) fn announce(&mut self, position: usize, wait: Estimate) -> Option<Do> {
        if self.phase != Phase::Music {
            return None;
        }
        let mut prompts = announcement(position, wait);
        if self.callback {
            prompts.push(name(CALLBACK_OFFER));
        }
        Some(self.say(Phase::Speaking, prompts))
    }

    /// `OfferCallback` (or an overflow to `callback`): the key works from now on; the offer is
    /// said now, or after the announcement playing.
    pub(crate) fn offer_callback(&mut self) -> Option<Do> {
        let first = !self.callback;
        self.callback = true;
        match self.phase {
            Phase::Music => Some(self.say(Phase::Speaking, vec![name(CALLBACK_OFFER)])),
            Phase::Speaking if first => {
                self.offer_pending = true;
                None
            }
            _ => None,
        }
    }

    /// An overflow to `message`: the invitation, then the recording. Whatever the caller was
    /// doing (music, the callback dialogue) stops.
    pub(crate) fn leave_message(&mut self) -> Do {
        self.callback = false;
        self.offer_pending = false;
        self.say(Phase::LeaveMessage, vec![name(LEAVE_MESSAGE)])
    }

    /// The prompt started by the last [`Do::Play`] has played out.
    pub(crate) fn playback_finished(&mut self, now: Instant) -> Option<Do> {
        if !std::mem::take(&mut self.playing) {
            return None;
        }
        match self.phase {
            Phase::Speaking if std::mem::take(&mut self.offer_pending) => {
                Some(self.say(Phase::Speaking, vec![name(CALLBACK_OFFER)]))
            }
            Phase::Speaking => Some(self.music()),
            Phase::Confirm { .. } => {
                self.deadline = Some(now + KEY_TIMEOUT);
                None
            }
            Phase::Enter { ref digits } => {
                let wait = if digits.is_empty() {
                    KEY_TIMEOUT
                } else {
                    DIGIT_TIMEOUT
                };
                self.deadline = Some(now + wait);
                None
            }
            Phase::Closing => Some(Do::Hangup),
            Phase::LeaveMessage => {
                self.phase = Phase::Recording;
                Some(Do::Record)
            }
            Phase::Music | Phase::Recording => None,
        }
    }

    /// A key from the caller.
    pub(crate) fn digit(&mut self, now: Instant, d: char) -> Option<Do> {
        match self.phase.clone() {
            Phase::Music | Phase::Speaking if self.callback && d == '1' => {
                self.offer_pending = false;
                Some(match self.own_number.clone() {
                    Some(n) => self.say(Phase::Confirm { number: n.clone() }, read_back(&n)),
                    None => self.ask_number(),
                })
            }
            Phase::Confirm { number } => match d {
                '1' => {
                    self.deadline = None;
                    Some(Do::Book(number))
                }
                '2' => Some(self.ask_number()),
                '*' => Some(self.music()),
                _ => None,
            },
            Phase::Enter { mut digits } => match d {
                '0'..='9' if digits.len() < MAX_DIGITS => {
                    digits.push(d);
                    self.phase = Phase::Enter { digits };
                    self.deadline = Some(now + DIGIT_TIMEOUT);
                    std::mem::take(&mut self.playing).then_some(Do::Stop)
                }
                '#' if digits.len() >= MIN_DIGITS => Some(self.say(
                    Phase::Confirm {
                        number: digits.clone(),
                    },
                    read_back(&digits),
                )),
                // too short: ask again
                '#' => Some(self.ask_number()),
                '*' => Some(self.music()),
                _ => None,
            },
            _ => None,
        }
    }

    fn ask_number(&mut self) -> Do {
        self.say(
            Phase::Enter {
                digits: String::new(),
            },
            vec![name(CALLBACK_ENTER)],
        )
    }

    /// The time from [`Waiting::deadline`] has come: no key, back to the music (the key still
    /// works).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Do> {
        match self.deadline {
            Some(at) if now >= at => {}
            _ => return None,
        }
        self.deadline = None;
        match self.phase {
            Phase::Confirm { .. } | Phase::Enter { .. } => Some(self.music()),
            _ => None,
        }
    }

    /// The ACD took the callback: the closing prompt, then [`Do::Hangup`].
    pub(crate) fn booked(&mut self) -> Do {
        self.callback = false;
        self.say(Phase::Closing, vec![name(CALLBACK_DONE)])
    }

    /// The ACD refused the callback (the queue has none, or the caller is gone from it): the
    /// caller keeps waiting with the music, and the key no longer works.
    pub(crate) fn refused(&mut self) -> Do {
        self.callback = false;
        self.music()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(prompts: &[PromptName]) -> String {
        numbers_ru::text(prompts)
    }

    fn play(d: Option<Do>) -> Vec<PromptName> {
        match d {
            Some(Do::Play(p)) => p,
            other => panic!("expected a prompt, got {other:?}"),
        }
    }

    #[test]
    fn announcements_say_the_place_and_an_honest_wait() {
        assert_eq!(
            texts(&announcement(3, Estimate::Minutes(5))),
            "вы третий в очереди queue/estimated-wait пять минут"
        );
        assert_eq!(
            texts(&announcement(1, Estimate::Minutes(1))),
            "вы первый в очереди queue/estimated-wait одна минута"
        );
        assert_eq!(
            texts(&announcement(22, Estimate::Minutes(2))),
            "вы двадцать второй в очереди queue/estimated-wait две минуты"
        );
        assert_eq!(
            texts(&announcement(2, Estimate::MoreThan(10))),
            "вы второй в очереди queue/estimated-wait queue/more-than десяти минут"
        );
        assert_eq!(
            texts(&announcement(2, Estimate::MoreThan(21))),
            "вы второй в очереди queue/estimated-wait queue/more-than двадцати одной минуты"
        );
    }

    #[test]
    fn an_announcement_replaces_the_music_then_the_music_resumes() {
        let t0 = Instant::now();
        let mut w = Waiting::new("79131234567");
        let p = play(w.announce(2, Estimate::Minutes(3)));
        assert_eq!(p.first(), Some(&name("numbers/vy")));
        // a second announcement while the first plays is not stacked
        assert_eq!(w.announce(1, Estimate::Minutes(1)), None);
        assert_eq!(w.playback_finished(t0), Some(Do::Music));
        // a stray end (a stopped playback) does nothing
        assert_eq!(w.playback_finished(t0), None);
        // no callback on offer: `1` is not the queue's business
        assert_eq!(w.digit(t0, '1'), None);
    }

    #[test]
    fn the_callback_offer_books_the_callers_own_number() {
        let t0 = Instant::now();
        let mut w = Waiting::new("+79131234567");
        assert_eq!(play(w.offer_callback()), vec![name(CALLBACK_OFFER)]);
        assert_eq!(w.playback_finished(t0), Some(Do::Music));
        // the key works after the offer was said; the number is read back
        let p = play(w.digit(t0, '1'));
        assert_eq!(p.first(), Some(&name(CALLBACK_INTRO)));
        assert_eq!(p.last(), Some(&name(CALLBACK_CONFIRM)));
        assert_eq!(
            texts(&p[1..p.len() - 1]),
            "семь девять один три один два три четыре пять шесть семь"
        );
        assert_eq!(w.playback_finished(t0), None);
        assert_eq!(w.deadline(), Some(t0 + KEY_TIMEOUT));
        assert_eq!(w.digit(t0, '1'), Some(Do::Book("+79131234567".into())));
        assert_eq!(play(Some(w.booked())), vec![name(CALLBACK_DONE)]);
        assert_eq!(w.playback_finished(t0), Some(Do::Hangup));
    }

    #[test]
    fn another_number_is_keyed_in_and_confirmed() {
        let t0 = Instant::now();
        let mut w = Waiting::new("79131234567");
        w.offer_callback();
        w.playback_finished(t0);
        play(w.digit(t0, '1'));
        // `2`: another number; the first digit interrupts the prompt
        assert_eq!(play(w.digit(t0, '2')), vec![name(CALLBACK_ENTER)]);
        assert_eq!(w.digit(t0, '3'), Some(Do::Stop));
        for d in "835221".chars() {
            assert_eq!(w.digit(t0, d), None);
        }
        assert_eq!(w.deadline(), Some(t0 + DIGIT_TIMEOUT));
        let p = play(w.digit(t0, '#'));
        assert_eq!(
            texts(&p[1..p.len() - 1]),
            "три восемь три пять два два один"
        );
        w.playback_finished(t0);
        assert_eq!(w.digit(t0, '1'), Some(Do::Book("3835221".into())));
    }

    #[test]
    fn a_hidden_caller_must_key_in_a_number() {
        let t0 = Instant::now();
        for hidden in ["anonymous", "", "123", "unknown", "+7913abc"] {
            let mut w = Waiting::new(hidden);
            w.offer_callback();
            w.playback_finished(t0);
            assert_eq!(
                play(w.digit(t0, '1')),
                vec![name(CALLBACK_ENTER)],
                "{hidden}"
            );
            // too short a number is asked for again
            w.digit(t0, '5');
            assert_eq!(play(w.digit(t0, '#')), vec![name(CALLBACK_ENTER)]);
        }
    }

    #[test]
    fn no_key_in_time_goes_back_to_the_music_and_the_key_still_works() {
        let t0 = Instant::now();
        let mut w = Waiting::new("79131234567");
        w.offer_callback();
        w.playback_finished(t0);
        play(w.digit(t0, '1'));
        let t1 = t0 + Duration::from_secs(3);
        w.playback_finished(t1);
        // early: nothing
        assert_eq!(w.handle_timeout(t1 + Duration::from_secs(1)), None);
        assert_eq!(w.handle_timeout(t1 + KEY_TIMEOUT), Some(Do::Music));
        assert_eq!(w.deadline(), None);
        // later announcements remind the caller of the offer
        let p = play(w.announce(2, Estimate::Minutes(4)));
        assert_eq!(p.last(), Some(&name(CALLBACK_OFFER)));
        // a key during the announcement starts the dialogue at once
        assert_eq!(play(w.digit(t1, '1')).first(), Some(&name(CALLBACK_INTRO)));
    }

    #[test]
    fn an_offer_during_an_announcement_follows_it() {
        let t0 = Instant::now();
        let mut w = Waiting::new("79131234567");
        play(w.announce(5, Estimate::MoreThan(10)));
        assert_eq!(w.offer_callback(), None);
        assert_eq!(play(w.playback_finished(t0)), vec![name(CALLBACK_OFFER)]);
        assert_eq!(w.playback_finished(t0), Some(Do::Music));
    }

    #[test]
    fn an_overflow_to_a_message_invites_then_records() {
        let t0 = Instant::now();
        let mut w = Waiting::new("79131234567");
        w.offer_callback();
        assert_eq!(play(Some(w.leave_message())), vec![name(LEAVE_MESSAGE)]);
        assert_eq!(w.playback_finished(t0), Some(Do::Record));
        // keys while recording are not the queue's, and the offer is gone
        assert!(!w.takes_keys());
        assert_eq!(w.digit(t0, '1'), None);
        assert_eq!(w.announce(1, Estimate::Minutes(1)), None);
    }

    #[test]
    fn a_refused_callback_goes_back_to_the_music_without_the_key() {
        let t0 = Instant::now();
        let mut w = Waiting::new("79131234567");
        w.offer_callback();
        w.playback_finished(t0);
        play(w.digit(t0, '1'));
        assert_eq!(w.digit(t0, '1'), Some(Do::Book("79131234567".into())));
        assert_eq!(w.refused(), Do::Music);
        assert_eq!(w.digit(t0, '1'), None);
    }
}
