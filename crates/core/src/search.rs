//! Patient search: by name (prefix, substring, one typo, accents ignored), birth date, MRN or
//! phone, ranked with exact matches first.
//!
//! Names are indexed word by word in `patient_name_words` (folded: lower case, no accents).
//! Exact and prefix matches are index range scans. Substring and typo matches first find
//! candidate words in a dictionary of the distinct indexed words (kept in memory for the
//! session and refreshed when any patient's names change), then look those words up.

use std::collections::HashMap;

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::chart::patient::{name_words, phone_digits, Demographics, Sex};
use crate::ids::*;
use crate::roles::Permission;
use crate::settings::DateFormat;
use crate::CoreError;

/// How many index entries a prefix may expand to before the rest are left out: for a query
/// of one word, and for each word of a longer query.
const SINGLE_PREFIX_CAP: usize = 200;
const PREFIX_CAP: usize = 5_000;
/// How many dictionary words a substring or typo may expand to.
const FUZZY_WORD_CAP: usize = 200;

/// One patient found, with enough to pick the right person and nothing clinical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SearchHit {
    pub id: PatientId,
    pub mrn: String,
    pub family: String,
    pub given: String,
    pub preferred: Option<String>,
    /// Absent when `masked`.
    pub birth_date: Option<NaiveDate>,
    pub age: Option<u32>,
    pub sex: Option<Sex>,
    /// The chart opens only for the care team (or through break-the-glass).
    pub restricted: bool,
    /// A restricted patient the searcher may not open: found only by its exact MRN, and
    /// shown only as "Restricted patient" with its id and MRN (to break the glass by), no
    /// name, birth date or sex.
    pub masked: bool,
    /// The phone number as registered (absent when `masked`), to tell callers apart.
    pub phone: Option<String>,
    /// What matched: `mrn`, `phone`, `birth_date`, `name` or `name_and_birth_date`.
    pub matched: &'static str,
    /// How well: 0 is exact; larger is looser (prefix, substring, typo).
    pub rank: u32,
}

impl SearchHit {
    /// Hides who this is: for a restricted patient the searcher may not open, found by its
    /// exact MRN (the only way such a patient is found, so `matched` and `rank` say nothing).
    pub(crate) fn mask(&mut self) {
        self.family = "Restricted patient".into();
        self.given = String::new();
        self.preferred = None;
        self.birth_date = None;
        self.age = None;
        self.sex = None;
        self.phone = None;
        self.masked = true;
    }
}

/// The distinct indexed name words, for substring and typo matching.
#[derive(Debug, Default)]
pub(crate) struct NameDictionary {
    stamp: i64,
    words: Vec<String>,
}

fn change_stamp(conn: &Connection) -> Result<i64, CoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(rowid), 0) FROM patient_versions")?
        .query_row([], |r| r.get(0))?)
}

impl NameDictionary {
    fn fresh(conn: &Connection, cached: &mut Option<NameDictionary>) -> Result<(), CoreError> {
        let stamp = change_stamp(conn)?;
        if cached.as_ref().is_some_and(|d| d.stamp == stamp) {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached("SELECT DISTINCT word FROM patient_name_words")?;
        let words = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        *cached = Some(NameDictionary { stamp, words });
        Ok(())
    }
}

/// Whether `a` and `b` differ by at most one insertion, deletion, substitution or
/// transposition of adjacent letters.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if prefix == la && prefix == lb {
        return true;
    }
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match la.cmp(&lb) {
        std::cmp::Ordering::Equal => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        std::cmp::Ordering::Greater => ra[1..] == *rb,
        std::cmp::Ordering::Less => *ra == rb[1..],
    }
}

/// A birth date as people type it: `1978-12-18`, `18 Dec 1978`, and with slashes or dots in
/// the clinic's order (`date_format`), falling back to the other order when that cannot be a
/// date (`12/18/1978` is December whatever the setting).
pub(crate) fn parse_date_query(q: &str, format: DateFormat) -> Option<NaiveDate> {
    let slashed: &[&str] = match format {
        DateFormat::Mdy => &["%m/%d/%Y", "%m.%d.%Y", "%m-%d-%Y", "%d/%m/%Y", "%d.%m.%Y"],
        DateFormat::Dmy | DateFormat::Ymd => {
            &["%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m/%d/%Y", "%m.%d.%Y"]
        }
    };
    ["%Y-%m-%d", "%Y/%m/%d", "%d %b %Y", "%d %B %Y"]
        .iter()
        .chain(slashed)
        .find_map(|f| NaiveDate::parse_from_str(q, f).ok())
        .filter(|d| {
            let y = chrono::Datelike::year(d);
            (1850..=2200).contains(&y)
        })
}

/// Finds patients; at most `limit`, best first. `may_open` says whether the searcher may
/// open a restricted patient's chart: one they may not is found only by its exact MRN, and
/// then masked, so that a search never confirms that a named person is a patient here.
///
/// A restricted patient's words are in no index (they are sealed to the patient's key):
/// `openable` holds the restricted patients the searcher may open, with their demographics
/// opened, and they are matched here in memory as the index would match them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search(
    conn: &Connection,
    dictionary: &mut Option<NameDictionary>,
    query: &str,
    today: NaiveDate,
    limit: usize,
    date_format: DateFormat,
    openable: &HashMap<i64, Demographics>,
    mut may_open: impl FnMut(i64) -> Result<bool, CoreError>,
) -> Result<Vec<SearchHit>, CoreError> {
    let q = query.trim();
    if q.is_empty() || q.chars().count() > 200 {
        return Ok(Vec::new());
    }
    // A name with a birth date ("Anna 1978-12-18", "12/18/1978 Anna Lee"): the name's
    // matches born on that day.
    let words: Vec<&str> = q.split_whitespace().collect();
    if words.len() >= 2 {
        let dated: Vec<(usize, NaiveDate)> = words
            .iter()
            .enumerate()
            .filter_map(|(i, w)| parse_date_query(w, date_format).map(|d| (i, d)))
            .collect();
        if let [(at, born)] = dated[..] {
            let name: Vec<&str> = words
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, w)| *w)
                .collect();
            if name.iter().any(|w| w.chars().any(char::is_alphabetic)) {
                return search_name_born(
                    conn,
                    dictionary,
                    &name.join(" "),
                    born,
                    today,
                    limit,
                    openable,
                    may_open,
                );
            }
        }
    }
    // patient id -> (rank, what matched, the order it was found in)
    let mut found: HashMap<i64, (u32, &'static str, usize)> = HashMap::new();
    let mut order = 0usize;
    let mut note = |found: &mut HashMap<i64, (u32, &'static str, usize)>,
                    id: i64,
                    rank: u32,
                    what: &'static str| {
        order += 1;
        found.entry(id).or_insert((rank, what, order));
    };

    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let numeric = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'));
    if numeric && digits.len() >= 4 {
        let mut stmt = conn.prepare_cached("SELECT id FROM patients WHERE mrn = ?1")?;
        for id in stmt.query_map([&digits], |r| r.get::<_, i64>(0))? {
            note(&mut found, id?, 0, "mrn");
        }
        let mut stmt = conn.prepare_cached(
            "SELECT id, phone_digits = ?1 FROM patients
              WHERE phone_digits >= ?1 AND phone_digits < ?1 || ':' ORDER BY phone_digits LIMIT 200",
        )?;
        for row in stmt.query_map([&digits], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
        })? {
            let (id, exact) = row?;
            note(&mut found, id, if exact { 0 } else { 1 }, "phone");
        }
        // A number given without its country or area code: its last 7 to 10 digits.
        if (7..=15).contains(&digits.len()) {
            let reversed: String = digits.chars().rev().collect();
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM patients
                  WHERE phone_rev >= ?1 AND phone_rev < ?1 || ':' ORDER BY phone_rev LIMIT 200",
            )?;
            for id in stmt.query_map([&reversed], |r| r.get::<_, i64>(0))? {
                note(&mut found, id?, 1, "phone");
            }
        }
    }
    if let Some(date) = parse_date_query(q, date_format) {
        let mut stmt =
            conn.prepare_cached("SELECT id FROM patients WHERE birth_date = ?1 LIMIT 1000")?;
        for id in stmt.query_map([date.format("%Y-%m-%d").to_string()], |r| {
            r.get::<_, i64>(0)
        })? {
            note(&mut found, id?, 0, "birth_date");
        }
    }
    // A restricted chart the searcher may not open counts only as an exact MRN match: left
    // out here, before it can decide whether the names are searched too (which would show
    // that such a patient was born on the date typed).
    let mut hidden = Vec::new();
    for (&id, &(rank, what, _)) in &found {
        if what == "mrn" && rank == 0 {
            continue;
        }
        let restricted: bool = conn
            .prepare_cached("SELECT restricted FROM patients WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        if restricted && !may_open(id)? {
            hidden.push(id);
        }
    }
    for id in hidden {
        found.remove(&id);
    }
    let date = parse_date_query(q, date_format);
    for (&id, d) in openable {
        let phone = d.phone.as_deref().map(phone_digits).unwrap_or_default();
        if numeric && digits.len() >= 4 && !phone.is_empty() && phone.starts_with(&digits) {
            note(&mut found, id, u32::from(phone != digits), "phone");
        } else if numeric && (7..=15).contains(&digits.len()) && phone.ends_with(&digits) {
            note(&mut found, id, 1, "phone");
        }
        if date == Some(d.birth_date) {
            note(&mut found, id, 0, "birth_date");
        }
    }
    let tokens = name_words(q);
    if found.is_empty() && !tokens.is_empty() && !numeric {
        for (id, rank, order) in name_matches(conn, dictionary, &tokens)? {
            found.insert(id, (rank, "name", order));
        }
        for (&id, d) in openable {
            if let Some(rank) = name_rank(d, &tokens) {
                note(&mut found, id, rank, "name");
            }
        }
    }

    hits_of(conn, found, today, limit, openable, may_open)
}

/// The hits for what was found (patient id → rank, what matched, order), best first, at most
/// `limit`, restricted charts the searcher may not open left out unless found by exact MRN
/// (and then masked).
fn hits_of(
    conn: &Connection,
    found: HashMap<i64, (u32, &'static str, usize)>,
    today: NaiveDate,
    limit: usize,
    openable: &HashMap<i64, Demographics>,
    mut may_open: impl FnMut(i64) -> Result<bool, CoreError>,
) -> Result<Vec<SearchHit>, CoreError> {
    // Best rank first; within a rank, the order the index gave (alphabetical by the word
    // that matched). Rows are read only for the few that are shown.
    let mut ranked: Vec<(i64, u32, &'static str, usize)> = found
        .into_iter()
        .map(|(id, (r, m, o))| (id, r, m, o))
        .collect();
    ranked.sort_by_key(|(id, rank, _, order)| (*rank, *order, *id));
    let mut stmt = conn.prepare_cached(
        "SELECT id, mrn, family, given, preferred_name, birth_date, sex, restricted, phone FROM patients WHERE id = ?1",
    )?;
    let mut hits = Vec::with_capacity(ranked.len().min(limit));
    for (id, rank, matched, _) in ranked {
        if hits.len() == limit {
            break;
        }
        let mut hit = stmt.query_row([id], |r| {
            let sealed = openable.get(&id);
            let birth: String = r.get(5)?;
            let sex: String = r.get(6)?;
            let birth_date =
                NaiveDate::parse_from_str(&birth, "%Y-%m-%d").unwrap_or(NaiveDate::MIN);
            let (family, given, preferred, birth_date, phone) = match sealed {
                Some(d) => (
                    d.family.clone(),
                    d.given.clone(),
                    d.preferred.clone(),
                    d.birth_date,
                    d.phone.clone(),
                ),
                None => (r.get(2)?, r.get(3)?, r.get(4)?, birth_date, r.get(8)?),
            };
            Ok(SearchHit {
                id: r.get(0)?,
                mrn: r.get(1)?,
                family,
                given,
                preferred,
                birth_date: Some(birth_date),
                age: Some(today.years_since(birth_date).unwrap_or(0)),
                sex: Some(Sex::parse(&sex).unwrap_or(Sex::Unknown)),
                restricted: r.get(7)?,
                phone,
                masked: false,
                matched,
                rank,
            })
        })?;
        if hit.restricted && !may_open(id)? {
            // Left out before the limit is applied, so the count of hits shows nothing either.
            if !(matched == "mrn" && rank == 0) {
                continue;
            }
            hit.mask();
        }
        hits.push(hit);
    }
    // Shown alphabetically within a rank.
    hits.sort_by_cached_key(|h| {
        (
            h.rank,
            crate::chart::patient::fold(&h.family),
            crate::chart::patient::fold(&h.given),
            h.id,
        )
    });
    Ok(hits)
}

/// Patients whose names match `name` and who were born on `born`.
#[allow(clippy::too_many_arguments)]
fn search_name_born(
    conn: &Connection,
    dictionary: &mut Option<NameDictionary>,
    name: &str,
    born: NaiveDate,
    today: NaiveDate,
    limit: usize,
    openable: &HashMap<i64, Demographics>,
    mut may_open: impl FnMut(i64) -> Result<bool, CoreError>,
) -> Result<Vec<SearchHit>, CoreError> {
    let tokens = name_words(name);
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let born_text = born.format("%Y-%m-%d").to_string();
    let mut found: HashMap<i64, (u32, &'static str, usize)> = HashMap::new();
    let mut birth =
        conn.prepare_cached("SELECT birth_date, restricted FROM patients WHERE id = ?1")?;
    for (id, rank, order) in name_matches(conn, dictionary, &tokens)? {
        let (b, restricted): (String, bool) =
            birth.query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if b == born_text && (!restricted || may_open(id)?) {
            found.insert(id, (rank, "name_and_birth_date", order));
        }
    }
    for (&id, d) in openable {
        if d.birth_date == born {
            if let Some(rank) = name_rank(d, &tokens) {
                found.insert(id, (rank, "name_and_birth_date", usize::MAX));
            }
        }
    }
    hits_of(conn, found, today, limit, openable, may_open)
}

/// How a restricted patient's names match every token, scored as [`name_matches`] scores
/// the index (exact, prefix, substring, one typo; a given or preferred name a little lower).
fn name_rank(d: &Demographics, tokens: &[String]) -> Option<u32> {
    let words: Vec<(String, u32)> = [
        (Some(d.family.as_str()), 0),
        (Some(d.given.as_str()), 1),
        (d.preferred.as_deref(), 1),
    ]
    .into_iter()
    .filter_map(|(text, field)| Some((text?, field)))
    .flat_map(|(text, field)| name_words(text).into_iter().map(move |w| (w, field)))
    .collect();
    let mut total = 0;
    for token in tokens.iter().take(6) {
        let best = words
            .iter()
            .filter_map(|(w, field)| {
                let level = if w == token {
                    0
                } else if w.starts_with(token.as_str()) {
                    1
                } else if token.chars().count() >= 3 && w.contains(token.as_str()) {
                    2
                } else if token.chars().count() >= 3 && within_one_edit(w, token) {
                    3
                } else {
                    return None;
                };
                Some(level * 10 + field)
            })
            .min()?;
        total += best;
    }
    Some(total)
}

/// Patients whose names match every token, with a rank: the sum over tokens of 0 (exact
/// word), 1 (prefix), 2 (substring) or 3 (one typo), times ten, plus one per token matched
/// only in a given or preferred name (family names first).
fn name_matches(
    conn: &Connection,
    dictionary: &mut Option<NameDictionary>,
    tokens: &[String],
) -> Result<Vec<(i64, u32, usize)>, CoreError> {
    // A single word's results come out of the index in word order, so the first few hundred
    // are the best; several words are intersected, so each needs a wider net.
    let prefix_cap = if tokens.len() == 1 {
        SINGLE_PREFIX_CAP
    } else {
        PREFIX_CAP
    };
    // patient id -> (score, the order it was first found in)
    let mut total: Option<HashMap<i64, (u32, usize)>> = None;
    for token in tokens.iter().take(6) {
        let mut best: HashMap<i64, (u32, usize)> = HashMap::new();
        let mut seen = 0usize;
        let mut add = |id: i64, field: i64, level: u32| {
            let score = level * 10 + u32::from(field != 0);
            seen += 1;
            best.entry(id)
                .and_modify(|(s, _)| *s = (*s).min(score))
                .or_insert((score, seen));
        };
        let mut exact = conn
            .prepare_cached("SELECT patient_id, field FROM patient_name_words WHERE word = ?1")?;
        for row in exact.query_map([token], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (id, field) = row?;
            add(id, field, 0);
        }
        let mut prefix = conn.prepare_cached(
            "SELECT patient_id, field FROM patient_name_words
              WHERE word > ?1 AND word < ?1 || char(1114111) LIMIT ?2",
        )?;
        for row in prefix.query_map(params![token, prefix_cap as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (id, field) = row?;
            add(id, field, 1);
        }
        if token.chars().count() >= 3 {
            NameDictionary::fresh(conn, dictionary)?;
            let words = dictionary
                .as_ref()
                .map(|d| d.words.as_slice())
                .unwrap_or(&[]);
            let typo_ok = token.chars().count() >= 3;
            let mut fuzzy: Vec<(&str, u32)> = Vec::new();
            for w in words {
                if w == token || w.starts_with(token.as_str()) {
                    continue;
                }
                if w.contains(token.as_str()) {
                    fuzzy.push((w, 2));
                } else if typo_ok && within_one_edit(w, token) {
                    fuzzy.push((w, 3));
                }
                if fuzzy.len() >= FUZZY_WORD_CAP {
                    break;
                }
            }
            for (w, level) in fuzzy {
                for row in
                    exact.query_map([w], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                {
                    let (id, field) = row?;
                    add(id, field, level);
                }
            }
        }
        total = Some(match total {
            None => best,
            Some(prev) => prev
                .into_iter()
                .filter_map(|(id, (s, order))| best.get(&id).map(|(b, _)| (id, (s + b, order))))
                .collect(),
        });
    }
    Ok(total
        .unwrap_or_default()
        .into_iter()
        .map(|(id, (score, order))| (id, score, order))
        .collect())
}

/// The patients a name means, matched as [`search`] matches names (each word exact, from
/// its start, inside a word, or with one typo; accents ignored), keeping only the best of
/// those matches (an exact name leaves out its typos), at most `limit + 1` so a caller can
/// tell that there were more. Only names the reader could find by searching: the index
/// holds no restricted patient's words, and `openable` holds the restricted patients this
/// session may open, so a restricted patient is never found by a name its reader may not see.
pub(crate) fn patients_named(
    conn: &Connection,
    dictionary: &mut Option<NameDictionary>,
    name: &str,
    openable: &HashMap<i64, Demographics>,
    limit: usize,
) -> Result<Vec<i64>, CoreError> {
    let tokens = name_words(name);
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: HashMap<i64, u32> = name_matches(conn, dictionary, &tokens)?
        .into_iter()
        .map(|(id, rank, _)| (id, rank))
        .collect();
    for (&id, d) in openable {
        if let Some(rank) = name_rank(d, &tokens) {
            found.insert(id, rank);
        }
    }
    // Whole levels (exact, start, inside, typo) only: a given name matching where a family
    // name would (rank + 1) is as good a match.
    let Some(best) = found.values().map(|r| r / 10).min() else {
        return Ok(Vec::new());
    };
    let mut restricted = conn.prepare_cached("SELECT restricted FROM patients WHERE id = ?1")?;
    let mut ids = Vec::new();
    let mut sorted: Vec<(i64, u32)> = found.into_iter().collect();
    sorted.sort_unstable();
    for (id, rank) in sorted {
        if rank / 10 != best {
            continue;
        }
        // The index never holds a restricted patient's words; should a stale row say
        // otherwise, it still finds nothing the session may not open.
        let shown = match restricted
            .query_row([id], |r| r.get::<_, bool>(0))
            .optional()?
        {
            Some(false) => true,
            Some(true) => openable.contains_key(&id),
            None => false,
        };
        if !shown {
            continue;
        }
        ids.push(id);
        if ids.len() > limit {
            break;
        }
    }
    Ok(ids)
}

/// The restricted patients the searcher may open (on the care team, or an active grant),
/// with their demographics opened by the session's keys.
pub(crate) fn openable_restricted(
    conn: &Connection,
    ctx: &crate::session::Ctx<'_>,
) -> Result<HashMap<i64, Demographics>, CoreError> {
    let Some(uid) = ctx.actor.id else {
        return Ok(HashMap::new());
    };
    let grants = ctx
        .actor
        .role
        .is_some_and(|r| r.allows(Permission::BreakGlass));
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT p.id FROM patients p INDEXED BY patients_restricted WHERE p.restricted = 1 AND (
                 EXISTS (SELECT 1 FROM care_team c WHERE c.patient_id = p.id AND c.user_id = ?1)
              OR (?2 AND EXISTS (SELECT 1 FROM access_grants g
                                  WHERE g.patient_id = p.id AND g.user_id = ?1 AND g.expires_at > ?3)))",
        )?
        .query_map(
            params![uid, grants, chartroom_audit::format_time(ctx.now)],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut out = HashMap::new();
    for id in ids {
        // The table rows name members; the security log decides (as the gate does).
        let may = crate::access::on_care_team(conn, id, uid)?
            || (grants && crate::access::active_grant(conn, id, uid, ctx.now)?.is_some());
        if !may {
            continue;
        }
        let p = crate::chart::patient::get(conn, id)?;
        // Placeholders are what a chart whose key this session cannot open shows.
        let sealed_shut = p.demographics.family == crate::chart::patient::RESTRICTED_FAMILY
            && p.demographics.given.is_empty();
        if !sealed_shut {
            out.insert(id, p.demographics);
        }
    }
    Ok(out)
}

impl crate::Session {
    /// Finds patients by name (prefix, substring, one typo, accents ignored), birth date,
    /// MRN or phone. The trail records that a search ran and how many it found, never what
    /// was searched for.
    pub fn search_patients(&mut self, query: &str) -> Result<Vec<SearchHit>, CoreError> {
        let today = self.clock.now().date_naive();
        let mut dictionary = self.search_dictionary.take();
        let result = self.run(
            Permission::SearchPatients,
            crate::audit::Op::execute("patient.search"),
            false,
            |tx, op, ctx| {
                let may_open = |id: i64| match ctx.actor.id {
                    Some(uid) => Ok(crate::access::on_care_team(tx, id, uid)?
                        || (ctx
                            .actor
                            .role
                            .is_some_and(|r| r.allows(Permission::BreakGlass))
                            && crate::access::active_grant(tx, id, uid, ctx.now)?.is_some())),
                    None => Ok(false),
                };
                let openable = openable_restricted(tx, ctx)?;
                let hits = search(
                    tx,
                    &mut dictionary,
                    query,
                    today,
                    50,
                    ctx.settings.date_format,
                    &openable,
                    may_open,
                )?;
                op.detail = Some(format!("{} results", hits.len()));
                Ok(hits)
            },
        );
        self.search_dictionary = dictionary;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_covers_typos_of_every_kind() {
        assert!(within_one_edit("muller", "muller"));
        assert!(within_one_edit("muller", "mullr"));
        assert!(within_one_edit("muller", "mueller") || within_one_edit("muller", "muler"));
        assert!(within_one_edit("okafor", "okafro"));
        assert!(within_one_edit("okafor", "okafur"));
        assert!(within_one_edit("okafor", "okkafor"));
        assert!(!within_one_edit("okafor", "okfaro"));
        assert!(!within_one_edit("smith", "smythe"));
    }

    #[test]
    fn dates_are_read_in_the_usual_ways() {
        let d = NaiveDate::from_ymd_opt(1984, 3, 2).expect("date");
        let ymd = DateFormat::Ymd;
        assert_eq!(parse_date_query("1984-03-02", ymd), Some(d));
        assert_eq!(parse_date_query("02.03.1984", ymd), Some(d));
        assert_eq!(parse_date_query("02 Mar 1984", ymd), Some(d));
        assert_eq!(parse_date_query("Okafor", ymd), None);
        // Slashes: the clinic's order decides; a day past 12 can only be read one way.
        assert_eq!(parse_date_query("03/02/1984", DateFormat::Mdy), Some(d));
        assert_eq!(parse_date_query("02/03/1984", DateFormat::Dmy), Some(d));
        let dec = NaiveDate::from_ymd_opt(1978, 12, 18).expect("date");
        for f in [DateFormat::Ymd, DateFormat::Dmy, DateFormat::Mdy] {
            assert_eq!(parse_date_query("12/18/1978", f), Some(dec));
            assert_eq!(parse_date_query("18.12.1978", f), Some(dec));
        }
    }
}
