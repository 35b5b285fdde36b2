//! The directory the case work runs on (issue 12 item 2): districts, the organisations that
//! carry requests out and the services they offer, plus the code lists of the case records
//! (citizens' social categories and flags, operators' wrap-up dispositions).
//!
//! Admin-edited TOML files named in `hotline.toml` (`districts`, `organisations`, `services`,
//! `cases`; each optional), read with `deny_unknown_fields` and checked together: every id
//! is unique in its file, every reference (an organisation's districts and services, a
//! service's performing kind) names something that exists, and each problem is reported as
//! `path:line:col`. A [`Directory`] exists only when everything passed; reloads swap the
//! whole of it (see `reload.rs`).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{line_col, Problem};

/// What kind of body an organisation is; a service names the kind that carries it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// A district's social service centre (КЦСОН, территориальный центр).
    TerritorialCentre,
    /// A city institution (a department of the city hall, a municipal agency).
    CityInstitution,
    /// A regional ministry or agency.
    RegionalAgency,
    /// A federal agency's local office (СФР, …).
    FederalAgency,
    /// Another Hotline the appeals can be passed to (the partner exchange).
    PartnerHotline,
    /// Anything else (a charity, volunteers' centre…).
    Other,
}

impl OrgKind {
    const ALL: [(&'static str, OrgKind); 6] = [
        ("territorial_centre", OrgKind::TerritorialCentre),
        ("city_institution", OrgKind::CityInstitution),
        ("regional_agency", OrgKind::RegionalAgency),
        ("federal_agency", OrgKind::FederalAgency),
        ("partner_hotline", OrgKind::PartnerHotline),
        ("other", OrgKind::Other),
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    fn names() -> String {
        Self::ALL.map(|(n, _)| n).join(", ")
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, k)| k == self)
            .map_or("other", |(n, _)| n);
        f.write_str(name)
    }
}

/// A city district.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct District {
    pub id: String,
    pub name: String,
}

/// An organisation requests are passed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub kind: OrgKind,
    /// The districts it serves; empty = the whole city.
    pub districts: Vec<String>,
    /// The services it carries out; empty = every service of its kind.
    pub services: Vec<String>,
    /// The number calls are transferred to.
    pub phone: Option<String>,
    /// The phone number is an example (the shipped configuration), not the real one.
    pub phone_is_example: bool,
    /// For a partner Hotline: its admin base URL.
    pub partner_url: Option<String>,
}

impl Organisation {
    /// Whether it carries out `service` (given the service's performing kind).
    pub fn offers(&self, service: &Service) -> bool {
        if self.services.is_empty() {
            self.kind == service.performer
        } else {
            self.services.contains(&service.id)
        }
    }
}

/// A service a citizen can ask for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    pub id: String,
    pub title: String,
    pub category: String,
    /// The kind of organisation that carries it out.
    pub performer: OrgKind,
    /// Days to complete, counted from the appeal's registration.
    pub days: u32,
}

/// An entry of a code list: a social category, a flag, a disposition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Code {
    pub id: String,
    pub name: String,
}

/// The checked directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Directory {
    pub districts: Vec<District>,
    pub organisations: Vec<Organisation>,
    pub services: Vec<Service>,
    /// Citizens' social categories (pensioner, disability group…).
    pub social_categories: Vec<Code>,
    /// Flags a citizen's card may carry (hard of hearing, lives alone…).
    pub flags: Vec<Code>,
    /// Wrap-up codes an appeal is closed with.
    pub dispositions: Vec<Code>,
}

impl Directory {
    pub fn district(&self, id: &str) -> Option<&District> {
        self.districts.iter().find(|d| d.id == id)
    }

    pub fn organisation(&self, id: &str) -> Option<&Organisation> {
        self.organisations.iter().find(|o| o.id == id)
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn has_category(&self, id: &str) -> bool {
        self.social_categories.iter().any(|c| c.id == id)
    }

    pub fn has_flag(&self, id: &str) -> bool {
        self.flags.iter().any(|c| c.id == id)
    }

    pub fn has_disposition(&self, id: &str) -> bool {
        self.dispositions.iter().any(|c| c.id == id)
    }

    /// The organisation an appeal for `service` from `district` goes to: the first one (in
    /// file order) that carries the service out and serves the district; one that names the
    /// district is preferred over a city-wide one.
    pub fn suggest(&self, service: &str, district: Option<&str>) -> Option<&Organisation> {
        let service = self.service(service)?;
        let offering = || self.organisations.iter().filter(|o| o.offers(service));
        match district {
            Some(d) => offering()
                .find(|o| o.districts.iter().any(|x| x == d))
                .or_else(|| offering().find(|o| o.districts.is_empty())),
            None => offering().find(|o| o.districts.is_empty()),
        }
    }
}

/// The running directory, swapped whole by a reload; readers clone the `Arc`.
#[derive(Clone, Debug, Default)]
pub struct DirectorySlot(Arc<RwLock<Arc<Directory>>>);

impl DirectorySlot {
    pub fn new(d: Arc<Directory>) -> Self {
        Self(Arc::new(RwLock::new(d)))
    }

    /// The directory as it stands now.
    pub fn get(&self) -> Arc<Directory> {
        match self.0.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces it (a reload that passed every check).
    pub fn set(&self, d: Arc<Directory>) {
        match self.0.write() {
            Ok(mut g) => *g = d,
            Err(poisoned) => *poisoned.into_inner() = d,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistrictsFile {
    #[serde(default)]
    district: Vec<DistrictDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistrictDef {
    id: Spanned<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganisationsFile {
    #[serde(default)]
    organisation: Vec<OrgDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgDef {
    id: Spanned<String>,
    name: String,
    kind: Spanned<String>,
    #[serde(default)]
    districts: Vec<Spanned<String>>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    phone: Option<Spanned<String>>,
    #[serde(default)]
    phone_is_example: bool,
    partner_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    #[serde(default)]
    service: Vec<ServiceDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDef {
    id: Spanned<String>,
    title: String,
    category: String,
    performer: Spanned<String>,
    days: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    social_category: Vec<CodeDef>,
    #[serde(default)]
    flag: Vec<CodeDef>,
    #[serde(default)]
    disposition: Vec<CodeDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeDef {
    id: Spanned<String>,
    name: String,
}

/// The four files' names, relative to the main file's folder (each optional).
#[derive(Clone, Copy, Debug, Default)]
pub struct Files<'a> {
    pub districts: Option<&'a str>,
    pub organisations: Option<&'a str>,
    pub services: Option<&'a str>,
    pub cases: Option<&'a str>,
}

/// One file being checked: its name and text, for `path:line:col`.
struct Src<'a> {
    path: String,
    text: &'a str,
}

impl Src<'_> {
    fn at<T>(&self, s: &Spanned<T>, message: String) -> Problem {
        let (line, col) = line_col(self.text, s.span().start);
        Problem {
            path: self.path.clone(),
            line,
            col,
            message,
        }
    }
}

/// An id: 1 to 64 of `a-z 0-9 - _`.
fn good_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks ids (form, uniqueness) of one file; returns the set of good ones.
fn ids<'a>(
    src: &Src<'_>,
    what: &str,
    all: impl Iterator<Item = &'a Spanned<String>>,
    problems: &mut Vec<Problem>,
) -> HashSet<String> {
    let mut seen = HashSet::new();
    for id in all {
        if !good_id(id.get_ref()) {
            problems.push(src.at(
                id,
                format!(
                    "{what} id {:?} must be 1 to 64 of a-z, 0-9, - and _",
                    id.get_ref()
                ),
            ));
        } else if !seen.insert(id.get_ref().clone()) {
            problems.push(src.at(id, format!("{what} {:?} is defined twice", id.get_ref())));
        }
    }
    seen
}

fn read_file<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<(String, String, T)> {
    let path = dir.join(name?);
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem {
                path: shown,
                line: 0,
                col: 0,
                message: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    match toml::from_str::<T>(&text) {
        Ok(v) => Some((shown, text, v)),
        Err(e) => {
            let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
            problems.push(Problem {
                path: shown,
                line,
                col,
                message: e.message().to_string(),
            });
            None
        }
    }
}

/// A phone number for transfers: `+` and 3 to 20 digits, spaces, dashes and brackets allowed.
fn good_phone(p: &str) -> bool {
    let digits = p.chars().filter(char::is_ascii_digit).count();
    (3..=20).contains(&digits)
        && p.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || " -()".contains(c) || (c == '+' && i == 0))
}

/// Reads and checks the directory files; problems go to `problems` (the directory is only
/// meaningful when none were added).
pub fn load(dir: &Path, files: Files<'_>, problems: &mut Vec<Problem>) -> Directory {
    let mut out = Directory::default();

    let districts = read_file::<DistrictsFile>(dir, files.districts, problems);
    let mut district_ids = HashSet::new();
    if let Some((path, text, f)) = &districts {
        let src = Src {
            path: path.clone(),
            text,
        };
        district_ids = ids(&src, "district", f.district.iter().map(|d| &d.id), problems);
        out.districts = f
            .district
            .iter()
            .map(|d| District {
                id: d.id.get_ref().clone(),
                name: d.name.clone(),
            })
            .collect();
    }

    let services = read_file::<ServicesFile>(dir, files.services, problems);
    let mut service_ids = HashSet::new();
    if let Some((path, text, f)) = &services {
        let src = Src {
            path: path.clone(),
            text,
        };
        service_ids = ids(&src, "service", f.service.iter().map(|s| &s.id), problems);
        for s in &f.service {
            let performer = OrgKind::parse(s.performer.get_ref());
            if performer.is_none() {
                problems.push(src.at(
                    &s.performer,
                    format!(
                        "service {:?}: performer {:?} is not one of {}",
                        s.id.get_ref(),
                        s.performer.get_ref(),
                        OrgKind::names()
                    ),
                ));
            }
            let days = u32::try_from(*s.days.get_ref())
                .ok()
                .filter(|d| (1..=366).contains(d));
            if days.is_none() {
                problems.push(src.at(
                    &s.days,
                    format!("service {:?}: days must be 1 to 366", s.id.get_ref()),
                ));
            }
            out.services.push(Service {
                id: s.id.get_ref().clone(),
                title: s.title.clone(),
                category: s.category.clone(),
                performer: performer.unwrap_or(OrgKind::Other),
                days: days.unwrap_or(1),
            });
        }
    }

    if let Some((path, text, f)) =
        read_file::<OrganisationsFile>(dir, files.organisations, problems)
    {
        let src = Src { path, text: &text };
        ids(
            &src,
            "organisation",
            f.organisation.iter().map(|o| &o.id),
            problems,
        );
        for o in &f.organisation {
            let name = o.id.get_ref();
            let kind = OrgKind::parse(o.kind.get_ref());
            if kind.is_none() {
                problems.push(src.at(
                    &o.kind,
                    format!(
                        "organisation {name:?}: kind {:?} is not one of {}",
                        o.kind.get_ref(),
                        OrgKind::names()
                    ),
                ));
            }
            for d in &o.districts {
                if !district_ids.contains(d.get_ref()) {
                    problems.push(src.at(
                        d,
                        format!(
                            "organisation {name:?}: unknown district {:?}{}",
                            d.get_ref(),
                            if files.districts.is_none() {
                                " (no `districts` file is named in the main file)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
            for s in &o.services {
                if !service_ids.contains(s.get_ref()) {
                    problems.push(src.at(
                        s,
                        format!("organisation {name:?}: unknown service {:?}", s.get_ref()),
                    ));
                }
            }
            if let Some(p) = &o.phone {
                if !good_phone(p.get_ref()) {
                    problems.push(src.at(
                        p,
                        format!(
                            "organisation {name:?}: phone {:?} is not a phone number",
                            p.get_ref()
                        ),
                    ));
                }
            }
            match (&o.partner_url, kind) {
                (Some(u), Some(OrgKind::PartnerHotline)) => {
                    let ok = u.get_ref().parse::<hyper::Uri>().ok().is_some_and(|u| {
                        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                    });
                    if !ok {
                        problems.push(src.at(
                            u,
                            format!(
                                "organisation {name:?}: partner_url {:?} must be an http(s)://host URL",
                                u.get_ref()
                            ),
                        ));
                    }
                }
                (Some(u), _) => problems.push(src.at(
                    u,
                    format!("organisation {name:?}: partner_url is for kind = \"partner_hotline\""),
                )),
                (None, Some(OrgKind::PartnerHotline)) => problems.push(src.at(
                    &o.kind,
                    format!("organisation {name:?}: a partner Hotline needs its partner_url"),
                )),
                (None, _) => {}
            }
            out.organisations.push(Organisation {
                id: name.clone(),
                name: o.name.clone(),
                kind: kind.unwrap_or(OrgKind::Other),
                districts: o.districts.iter().map(|d| d.get_ref().clone()).collect(),
                services: o.services.iter().map(|s| s.get_ref().clone()).collect(),
                phone: o.phone.as_ref().map(|p| p.get_ref().clone()),
                phone_is_example: o.phone_is_example,
                partner_url: o.partner_url.as_ref().map(|u| u.get_ref().clone()),
            });
        }
    }

    if let Some((path, text, f)) = read_file::<CasesFile>(dir, files.cases, problems) {
        let src = Src { path, text: &text };
        let codes = |what: &str, list: &[CodeDef], problems: &mut Vec<Problem>| {
            ids(&src, what, list.iter().map(|c| &c.id), problems);
            list.iter()
                .map(|c| Code {
                    id: c.id.get_ref().clone(),
                    name: c.name.clone(),
                })
                .collect::<Vec<_>>()
        };
        out.social_categories = codes("social category", &f.social_category, problems);
        out.flags = codes("flag", &f.flag, problems);
        out.dispositions = codes("disposition", &f.disposition, problems);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const FILES: Files<'static> = Files {
        districts: Some("districts.toml"),
        organisations: Some("organisations.toml"),
        services: Some("services.toml"),
        cases: Some("cases.toml"),
    };

    fn good(dir: &Path) {
        write(
            dir,
            "districts.toml",
            "[[district]]\nid = \"a\"\nname = \"А\"\n[[district]]\nid = \"b\"\nname = \"Б\"\n",
        );
        write(
            dir,
            "services.toml",
            "[[service]]\nid = \"home-care\"\ntitle = \"Уход на дому\"\ncategory = \"care\"\nperformer = \"territorial_centre\"\ndays = 10\n\
             [[service]]\nid = \"pension\"\ntitle = \"Пенсия\"\ncategory = \"money\"\nperformer = \"federal_agency\"\ndays = 30\n",
        );
        write(
            dir,
            "organisations.toml",
            "[[organisation]]\nid = \"tc-a\"\nname = \"ТЦ А\"\nkind = \"territorial_centre\"\ndistricts = [\"a\"]\n\
             [[organisation]]\nid = \"tc-b\"\nname = \"ТЦ Б\"\nkind = \"territorial_centre\"\ndistricts = [\"b\"]\nphone = \"+7 383 000-00-00\"\nphone_is_example = true\n\
             [[organisation]]\nid = \"sfr\"\nname = \"СФР\"\nkind = \"federal_agency\"\n",
        );
        write(
            dir,
            "cases.toml",
            "[[social_category]]\nid = \"pensioner\"\nname = \"Пенсионер\"\n[[flag]]\nid = \"hard-of-hearing\"\nname = \"Плохо слышит\"\n[[disposition]]\nid = \"consulted\"\nname = \"Консультация\"\n",
        );
    }

    #[test]
    fn a_good_directory_loads_and_suggests_by_service_and_district() {
        let dir = tempfile::tempdir().unwrap();
        good(dir.path());
        let mut problems = Vec::new();
        let d = load(dir.path(), FILES, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d.districts.len(), 2);
        assert_eq!(
            d.suggest("home-care", Some("b")).map(|o| o.id.as_str()),
            Some("tc-b")
        );
        assert_eq!(
            d.suggest("home-care", Some("a")).map(|o| o.id.as_str()),
            Some("tc-a")
        );
        assert_eq!(d.suggest("home-care", None), None);
        assert_eq!(
            d.suggest("pension", Some("a")).map(|o| o.id.as_str()),
            Some("sfr")
        );
        assert_eq!(d.suggest("nothing", Some("a")), None);
        assert!(d.has_flag("hard-of-hearing") && d.has_disposition("consulted"));
        assert!(d.has_category("pensioner") && !d.has_category("veteran"));
    }

    #[test]
    fn unknown_references_and_duplicates_are_located() {
        let dir = tempfile::tempdir().unwrap();
        good(dir.path());
        write(
            dir.path(),
            "organisations.toml",
            "[[organisation]]\nid = \"tc-a\"\nname = \"ТЦ А\"\nkind = \"territorial_centre\"\ndistricts = [\"a\", \"zz\"]\nservices = [\"flying\"]\n\
             [[organisation]]\nid = \"tc-a\"\nname = \"Снова\"\nkind = \"castle\"\n\
             [[organisation]]\nid = \"p\"\nname = \"Партнёр\"\nkind = \"partner_hotline\"\n",
        );
        let mut problems = Vec::new();
        load(dir.path(), FILES, &mut problems);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let has = |needle: &str, line: usize| {
            assert!(
                problems
                    .iter()
                    .any(|p| p.message.contains(needle) && p.line == line),
                "{needle:?} at line {line} not in {shown:#?}"
            )
        };
        has("unknown district \"zz\"", 5);
        has("unknown service \"flying\"", 6);
        has("\"tc-a\" is defined twice", 8);
        has("kind \"castle\"", 10);
        has("needs its partner_url", 14);
        assert!(shown
            .iter()
            .all(|s| s.contains("organisations.toml:") && !s.contains(":0:")));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        good(dir.path());
        write(
            dir.path(),
            "services.toml",
            "[[service]]\nid = \"x\"\ntitle = \"X\"\ncategory = \"c\"\nperformer = \"nobody\"\ndays = 0\n",
        );
        write(
            dir.path(),
            "districts.toml",
            "[[district]]\nid = \"a\"\nname = \"А\"\ncolour = \"red\"\n",
        );
        let mut problems = Vec::new();
        load(dir.path(), FILES, &mut problems);
        assert!(problems.iter().any(|p| p.path.ends_with("districts.toml")
            && p.line == 4
            && p.message.contains("colour")));
        assert!(problems
            .iter()
            .any(|p| p.line == 5 && p.message.contains("performer \"nobody\"")));
        assert!(problems
            .iter()
            .any(|p| p.line == 6 && p.message.contains("days must be")));
    }
}
