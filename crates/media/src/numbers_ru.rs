//! Russian numbers spoken from a shipped set of number prompts, with grammatical agreement, for
//! queue announcements: «примерно двадцать одна минута», «вы сто второй в очереди», «более пяти
//! минут».
//!
//! Numbers are built from pieces (one WAV each under `config/prompts/ru/numbers/`, made by
//! `scripts/make-prompts.sh` from the [`PIECES`] table below, which is the single list of names
//! and texts): units and teens, tens, hundreds, the feminine «одна/две», the three forms of
//! «минута», ordinals, «вы» and «в очереди». A number 0–999 is hundreds + tens + units, or
//! hundreds + a teen: 112 → «сто двенадцать».
//!
//! Agreement rules used:
//! - minutes: the last two digits 11–14 take «минут»; otherwise a last digit 1 takes «минута»,
//!   2–4 «минуты», anything else «минут». «Минута» is feminine: 1 → «одна», 2 → «две»
//!   (21 → «двадцать одна минута», 22 → «двадцать две минуты»).
//! - positions: a compound ordinal puts only its last word in the ordinal form, the rest stay
//!   cardinal — «сто двадцать третий», «двадцатый», «двухсотый». Ordinal pieces exist for 1–19,
//!   the tens and the hundreds, so every position 1–999 is said as a real ordinal (we do not fall
//!   back to «вы N-й»). Position 0 is said as 1 (the caller is next); 1000 and more is said as
//!   «вы в очереди» without a number, which is still true.
//! - «более N минут» needs the genitive ([`more_than_minutes_phrase`]): genitive pieces exist for
//!   the units (feminine «одной»), teens, tens and hundreds, and every word of a compound number
//!   is declined — «более двадцати одной минуты», «более ста пяти минут».

use std::path::{Path, PathBuf};

use crate::prompts::PromptName;

/// Every number prompt: (prompt name, Russian text spoken by the generator). The file of prompt
/// `numbers/X` is `X.wav` in the numbers directory.
pub const PIECES: &[(&str, &str)] = &[
    ("numbers/0", "ноль"),
    ("numbers/1", "один"),
    ("numbers/2", "два"),
    ("numbers/3", "три"),
    ("numbers/4", "четыре"),
    ("numbers/5", "пять"),
    ("numbers/6", "шесть"),
    ("numbers/7", "семь"),
    ("numbers/8", "восемь"),
    ("numbers/9", "девять"),
    ("numbers/10", "десять"),
    ("numbers/11", "одиннадцать"),
    ("numbers/12", "двенадцать"),
    ("numbers/13", "тринадцать"),
    ("numbers/14", "четырнадцать"),
    ("numbers/15", "пятнадцать"),
    ("numbers/16", "шестнадцать"),
    ("numbers/17", "семнадцать"),
    ("numbers/18", "восемнадцать"),
    ("numbers/19", "девятнадцать"),
    ("numbers/20", "двадцать"),
    ("numbers/30", "тридцать"),
    ("numbers/40", "сорок"),
    ("numbers/50", "пятьдесят"),
    ("numbers/60", "шестьдесят"),
    ("numbers/70", "семьдесят"),
    ("numbers/80", "восемьдесят"),
    ("numbers/90", "девяносто"),
    ("numbers/100", "сто"),
    ("numbers/200", "двести"),
    ("numbers/300", "триста"),
    ("numbers/400", "четыреста"),
    ("numbers/500", "пятьсот"),
    ("numbers/600", "шестьсот"),
    ("numbers/700", "семьсот"),
    ("numbers/800", "восемьсот"),
    ("numbers/900", "девятьсот"),
    ("numbers/1f", "одна"),
    ("numbers/2f", "две"),
    ("numbers/minuta", "минута"),
    ("numbers/minuty", "минуты"),
    ("numbers/minut", "минут"),
    ("numbers/ord1", "первый"),
    ("numbers/ord2", "второй"),
    ("numbers/ord3", "третий"),
    ("numbers/ord4", "четвёртый"),
    ("numbers/ord5", "пятый"),
    ("numbers/ord6", "шестой"),
    ("numbers/ord7", "седьмой"),
    ("numbers/ord8", "восьмой"),
    ("numbers/ord9", "девятый"),
    ("numbers/ord10", "десятый"),
    ("numbers/ord11", "одиннадцатый"),
    ("numbers/ord12", "двенадцатый"),
    ("numbers/ord13", "тринадцатый"),
    ("numbers/ord14", "четырнадцатый"),
    ("numbers/ord15", "пятнадцатый"),
    ("numbers/ord16", "шестнадцатый"),
    ("numbers/ord17", "семнадцатый"),
    ("numbers/ord18", "восемнадцатый"),
    ("numbers/ord19", "девятнадцатый"),
    ("numbers/ord20", "двадцатый"),
    ("numbers/ord30", "тридцатый"),
    ("numbers/ord40", "сороковой"),
    ("numbers/ord50", "пятидесятый"),
    ("numbers/ord60", "шестидесятый"),
    ("numbers/ord70", "семидесятый"),
    ("numbers/ord80", "восьмидесятый"),
    ("numbers/ord90", "девяностый"),
    ("numbers/ord100", "сотый"),
    ("numbers/ord200", "двухсотый"),
    ("numbers/ord300", "трёхсотый"),
    ("numbers/ord400", "четырёхсотый"),
    ("numbers/ord500", "пятисотый"),
    ("numbers/ord600", "шестисотый"),
    ("numbers/ord700", "семисотый"),
    ("numbers/ord800", "восьмисотый"),
    ("numbers/ord900", "девятисотый"),
    ("numbers/vy", "вы"),
    ("numbers/v-ocheredi", "в очереди"),
    // genitive, after «более» (feminine: «более одной минуты», «более двух минут»)
    ("numbers/g1f", "одной"),
    ("numbers/g2", "двух"),
    ("numbers/g3", "трёх"),
    ("numbers/g4", "четырёх"),
    ("numbers/g5", "пяти"),
    ("numbers/g6", "шести"),
    ("numbers/g7", "семи"),
    ("numbers/g8", "восьми"),
    ("numbers/g9", "девяти"),
    ("numbers/g10", "десяти"),
    ("numbers/g11", "одиннадцати"),
    ("numbers/g12", "двенадцати"),
    ("numbers/g13", "тринадцати"),
    ("numbers/g14", "четырнадцати"),
    ("numbers/g15", "пятнадцати"),
    ("numbers/g16", "шестнадцати"),
    ("numbers/g17", "семнадцати"),
    ("numbers/g18", "восемнадцати"),
    ("numbers/g19", "девятнадцати"),
    ("numbers/g20", "двадцати"),
    ("numbers/g30", "тридцати"),
    ("numbers/g40", "сорока"),
    ("numbers/g50", "пятидесяти"),
    ("numbers/g60", "шестидесяти"),
    ("numbers/g70", "семидесяти"),
    ("numbers/g80", "восьмидесяти"),
    ("numbers/g90", "девяноста"),
    ("numbers/g100", "ста"),
    ("numbers/g200", "двухсот"),
    ("numbers/g300", "трёхсот"),
    ("numbers/g400", "четырёхсот"),
    ("numbers/g500", "пятисот"),
    ("numbers/g600", "шестисот"),
    ("numbers/g700", "семисот"),
    ("numbers/g800", "восьмисот"),
    ("numbers/g900", "девятисот"),
];

const UNITS: [&str; 20] = [
    "numbers/0",
    "numbers/1",
    "numbers/2",
    "numbers/3",
    "numbers/4",
    "numbers/5",
    "numbers/6",
    "numbers/7",
    "numbers/8",
    "numbers/9",
    "numbers/10",
    "numbers/11",
    "numbers/12",
    "numbers/13",
    "numbers/14",
    "numbers/15",
    "numbers/16",
    "numbers/17",
    "numbers/18",
    "numbers/19",
];
const TENS: [&str; 10] = [
    "",
    "",
    "numbers/20",
    "numbers/30",
    "numbers/40",
    "numbers/50",
    "numbers/60",
    "numbers/70",
    "numbers/80",
    "numbers/90",
];
const HUNDREDS: [&str; 10] = [
    "",
    "numbers/100",
    "numbers/200",
    "numbers/300",
    "numbers/400",
    "numbers/500",
    "numbers/600",
    "numbers/700",
    "numbers/800",
    "numbers/900",
];
const GEN_UNITS: [&str; 20] = [
    "",
    "numbers/g1f",
    "numbers/g2",
    "numbers/g3",
    "numbers/g4",
    "numbers/g5",
    "numbers/g6",
    "numbers/g7",
    "numbers/g8",
    "numbers/g9",
    "numbers/g10",
    "numbers/g11",
    "numbers/g12",
    "numbers/g13",
    "numbers/g14",
    "numbers/g15",
    "numbers/g16",
    "numbers/g17",
    "numbers/g18",
    "numbers/g19",
];
const GEN_TENS: [&str; 10] = [
    "",
    "",
    "numbers/g20",
    "numbers/g30",
    "numbers/g40",
    "numbers/g50",
    "numbers/g60",
    "numbers/g70",
    "numbers/g80",
    "numbers/g90",
];
const GEN_HUNDREDS: [&str; 10] = [
    "",
    "numbers/g100",
    "numbers/g200",
    "numbers/g300",
    "numbers/g400",
    "numbers/g500",
    "numbers/g600",
    "numbers/g700",
    "numbers/g800",
    "numbers/g900",
];
const ORD_UNITS: [&str; 20] = [
    "",
    "numbers/ord1",
    "numbers/ord2",
    "numbers/ord3",
    "numbers/ord4",
    "numbers/ord5",
    "numbers/ord6",
    "numbers/ord7",
    "numbers/ord8",
    "numbers/ord9",
    "numbers/ord10",
    "numbers/ord11",
    "numbers/ord12",
    "numbers/ord13",
    "numbers/ord14",
    "numbers/ord15",
    "numbers/ord16",
    "numbers/ord17",
    "numbers/ord18",
    "numbers/ord19",
];
const ORD_TENS: [&str; 10] = [
    "",
    "",
    "numbers/ord20",
    "numbers/ord30",
    "numbers/ord40",
    "numbers/ord50",
    "numbers/ord60",
    "numbers/ord70",
    "numbers/ord80",
    "numbers/ord90",
];
const ORD_HUNDREDS: [&str; 10] = [
    "",
    "numbers/ord100",
    "numbers/ord200",
    "numbers/ord300",
    "numbers/ord400",
    "numbers/ord500",
    "numbers/ord600",
    "numbers/ord700",
    "numbers/ord800",
    "numbers/ord900",
];

/// Largest number said with the shipped pieces.
pub const MAX: u32 = 999;

/// Grammatical gender of the counted noun: it changes «один/одна», «два/две».
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    /// «один», «два» (e.g. «звонок»).
    Masculine,
    /// «одна», «две» (e.g. «минута»).
    Feminine,
}

fn name(s: &'static str) -> PromptName {
    PromptName::from_static(s)
}

fn pick(table: &[&'static str], i: u32) -> Option<PromptName> {
    table
        .get(i as usize)
        .copied()
        .filter(|s| !s.is_empty())
        .map(name)
}

/// `n` (clamped to 0–999) as cardinal pieces: 0 → «ноль», 112 → «сто двенадцать»,
/// 21 feminine → «двадцать одна».
pub fn cardinal(n: u32, gender: Gender) -> Vec<PromptName> {
    let n = n.min(MAX);
    if n == 0 {
        return vec![name("numbers/0")];
    }
    let mut out = Vec::with_capacity(3);
    out.extend(pick(&HUNDREDS, n / 100));
    let rest = n % 100;
    if rest >= 20 {
        out.extend(pick(&TENS, rest / 10));
    }
    let last = if rest >= 20 { rest % 10 } else { rest };
    match (last, gender) {
        (0, _) => {}
        (1, Gender::Feminine) => out.push(name("numbers/1f")),
        (2, Gender::Feminine) => out.push(name("numbers/2f")),
        (u, _) => out.extend(pick(&UNITS, u)),
    }
    out
}

/// The form of «минута» that agrees with `n`.
pub fn minutes_word(n: u32) -> PromptName {
    let n = n.min(MAX);
    name(match (n % 100, n % 10) {
        (11..=14, _) => "numbers/minut",
        (_, 1) => "numbers/minuta",
        (_, 2..=4) => "numbers/minuty",
        _ => "numbers/minut",
    })
}

/// «N минут» with agreement: 1 → «одна минута», 3 → «три минуты», 11 → «одиннадцать минут»,
/// 22 → «двадцать две минуты». Clamped to 999.
pub fn minutes_phrase(n: u32) -> Vec<PromptName> {
    let mut out = cardinal(n, Gender::Feminine);
    out.push(minutes_word(n));
    out
}

/// «N минут» in the genitive, as it follows «более» («более N минут»): 1 → «одной минуты»,
/// 2 → «двух минут», 5 → «пяти минут», 21 → «двадцати одной минуты», 11 → «одиннадцати минут».
/// The noun is the genitive singular «минуты» after a last «одной» (not 11), else the genitive
/// plural «минут». 0 is said as 1 (a wait of more than nothing is not a promise); clamped to 999.
pub fn more_than_minutes_phrase(n: u32) -> Vec<PromptName> {
    let n = n.clamp(1, MAX);
    let mut out = Vec::with_capacity(4);
    out.extend(pick(&GEN_HUNDREDS, n / 100));
    let rest = n % 100;
    if rest >= 20 {
        out.extend(pick(&GEN_TENS, rest / 10));
        out.extend(pick(&GEN_UNITS, rest % 10));
    } else {
        out.extend(pick(&GEN_UNITS, rest));
    }
    let singular = rest % 10 == 1 && rest != 11;
    out.push(name(if singular {
        "numbers/minuty"
    } else {
        "numbers/minut"
    }));
    out
}

/// `n` (1–999) as a masculine nominative ordinal: 3 → «третий», 23 → «двадцать третий»,
/// 200 → «двухсотый», 112 → «сто двенадцатый». 0 is said as 1; above 999 is clamped to 999.
pub fn ordinal(n: u32) -> Vec<PromptName> {
    let n = n.clamp(1, MAX);
    let (h, rest) = (n / 100, n % 100);
    let mut out = Vec::with_capacity(3);
    if rest == 0 {
        out.extend(pick(&ORD_HUNDREDS, h));
        return out;
    }
    out.extend(pick(&HUNDREDS, h));
    if rest < 20 {
        out.extend(pick(&ORD_UNITS, rest));
    } else if rest % 10 == 0 {
        out.extend(pick(&ORD_TENS, rest / 10));
    } else {
        out.extend(pick(&TENS, rest / 10));
        out.extend(pick(&ORD_UNITS, rest % 10));
    }
    out
}

/// «Вы N-й в очереди»: 3 → «вы третий в очереди». Position 0 is said as «первый»; 1000 and
/// more as «вы в очереди».
pub fn position_phrase(n: u32) -> Vec<PromptName> {
    let mut out = vec![name("numbers/vy")];
    if n <= MAX {
        out.extend(ordinal(n));
    }
    out.push(name("numbers/v-ocheredi"));
    out
}

/// The file of every piece in `dir` (e.g. `config/prompts/ru/numbers`), as `(name, path)` pairs
/// for [`crate::prompts::PromptCache::load`].
pub fn prompt_files(dir: &Path) -> Vec<(PromptName, PathBuf)> {
    PIECES
        .iter()
        .map(|(n, _)| {
            let file = n.strip_prefix("numbers/").unwrap_or(n);
            (name(n), dir.join(format!("{file}.wav")))
        })
        .collect()
}

/// The Russian text of a phrase, for logs and tests: `["numbers/20", "numbers/1f"]` →
/// «двадцать одна». Unknown pieces are shown by name.
pub fn text(phrase: &[PromptName]) -> String {
    phrase
        .iter()
        .map(|p| {
            PIECES
                .iter()
                .find(|(n, _)| *n == p.as_str())
                .map_or(p.as_str(), |(_, t)| t)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(n: u32) -> String {
        text(&minutes_phrase(n))
    }
    fn position(n: u32) -> String {
        text(&position_phrase(n))
    }

    #[test]
    fn minutes_agree_with_the_number() {
        let cases = [
            (0, "ноль минут"),
            (1, "одна минута"),
            (2, "две минуты"),
            (3, "три минуты"),
            (4, "четыре минуты"),
            (5, "пять минут"),
            (10, "десять минут"),
            (11, "одиннадцать минут"),
            (12, "двенадцать минут"),
            (13, "тринадцать минут"),
            (14, "четырнадцать минут"),
            (15, "пятнадцать минут"),
            (20, "двадцать минут"),
            (21, "двадцать одна минута"),
            (22, "двадцать две минуты"),
            (24, "двадцать четыре минуты"),
            (25, "двадцать пять минут"),
            (31, "тридцать одна минута"),
            (40, "сорок минут"),
            (99, "девяносто девять минут"),
            (100, "сто минут"),
            (101, "сто одна минута"),
            (102, "сто две минуты"),
            (111, "сто одиннадцать минут"),
            (112, "сто двенадцать минут"),
            (114, "сто четырнадцать минут"),
            (121, "сто двадцать одна минута"),
            (200, "двести минут"),
            (342, "триста сорок две минуты"),
            (511, "пятьсот одиннадцать минут"),
            (999, "девятьсот девяносто девять минут"),
            (5000, "девятьсот девяносто девять минут"),
        ];
        for (n, want) in cases {
            assert_eq!(minutes(n), want, "n = {n}");
        }
    }

    #[test]
    fn more_than_minutes_are_genitive() {
        let cases = [
            (0, "одной минуты"),
            (1, "одной минуты"),
            (2, "двух минут"),
            (3, "трёх минут"),
            (4, "четырёх минут"),
            (5, "пяти минут"),
            (10, "десяти минут"),
            (11, "одиннадцати минут"),
            (15, "пятнадцати минут"),
            (20, "двадцати минут"),
            (21, "двадцати одной минуты"),
            (22, "двадцати двух минут"),
            (40, "сорока минут"),
            (90, "девяноста минут"),
            (100, "ста минут"),
            (101, "ста одной минуты"),
            (111, "ста одиннадцати минут"),
            (245, "двухсот сорока пяти минут"),
            (999, "девятисот девяноста девяти минут"),
            (5000, "девятисот девяноста девяти минут"),
        ];
        for (n, want) in cases {
            assert_eq!(text(&more_than_minutes_phrase(n)), want, "n = {n}");
        }
    }

    #[test]
    fn masculine_cardinals() {
        assert_eq!(text(&cardinal(1, Gender::Masculine)), "один");
        assert_eq!(text(&cardinal(22, Gender::Masculine)), "двадцать два");
        assert_eq!(text(&cardinal(101, Gender::Masculine)), "сто один");
        assert_eq!(text(&cardinal(110, Gender::Masculine)), "сто десять");
        assert_eq!(text(&cardinal(700, Gender::Masculine)), "семьсот");
        assert_eq!(text(&cardinal(0, Gender::Feminine)), "ноль");
    }

    #[test]
    fn positions_are_ordinals() {
        let cases = [
            (0, "вы первый в очереди"),
            (1, "вы первый в очереди"),
            (2, "вы второй в очереди"),
            (3, "вы третий в очереди"),
            (4, "вы четвёртый в очереди"),
            (7, "вы седьмой в очереди"),
            (11, "вы одиннадцатый в очереди"),
            (12, "вы двенадцатый в очереди"),
            (14, "вы четырнадцатый в очереди"),
            (20, "вы двадцатый в очереди"),
            (21, "вы двадцать первый в очереди"),
            (22, "вы двадцать второй в очереди"),
            (25, "вы двадцать пятый в очереди"),
            (40, "вы сороковой в очереди"),
            (99, "вы девяносто девятый в очереди"),
            (100, "вы сотый в очереди"),
            (101, "вы сто первый в очереди"),
            (111, "вы сто одиннадцатый в очереди"),
            (112, "вы сто двенадцатый в очереди"),
            (120, "вы сто двадцатый в очереди"),
            (123, "вы сто двадцать третий в очереди"),
            (200, "вы двухсотый в очереди"),
            (999, "вы девятьсот девяносто девятый в очереди"),
            (1000, "вы в очереди"),
        ];
        for (n, want) in cases {
            assert_eq!(position(n), want, "n = {n}");
        }
    }

    #[test]
    fn every_piece_used_exists_and_every_piece_is_used() {
        let mut used = std::collections::BTreeSet::new();
        for n in 0..=1000 {
            for p in minutes_phrase(n)
                .into_iter()
                .chain(position_phrase(n))
                .chain(cardinal(n, Gender::Masculine))
                .chain(more_than_minutes_phrase(n))
            {
                assert!(
                    PIECES.iter().any(|(name, _)| *name == p.as_str()),
                    "{p} (for {n}) has no prompt"
                );
                used.insert(p.as_str().to_owned());
            }
        }
        for (name, _) in PIECES {
            assert!(used.contains(*name), "{name} is never used");
        }
        // And names are unique.
        let unique: std::collections::BTreeSet<_> = PIECES.iter().map(|(n, _)| n).collect();
        assert_eq!(unique.len(), PIECES.len());
    }

    #[test]
    fn prompt_files_map_names_to_wavs() {
        let files = prompt_files(Path::new("/p/ru/numbers"));
        assert_eq!(files.len(), PIECES.len());
        assert!(files.contains(&(
            PromptName::new("numbers/ord3"),
            PathBuf::from("/p/ru/numbers/ord3.wav")
        )));
    }
}
