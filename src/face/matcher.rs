//! 1:N matching of a face embedding against the enrolled gallery: cosine similarity of
//! L2-normalised 128-d embeddings, kept in one contiguous `Vec<f32>` so the scan is a
//! tight dot-product loop the compiler vectorises (about 10,000 identities in well under
//! a millisecond; see the `matches_10k_identities_quickly` test).
//!
//! A match needs both a score ≥ `threshold` and a lead ≥ `margin` over the runner-up: with
//! SFace, same-person scores were 0.72–0.77 on real photos and different people ≤ 0.30,
//! masked faces up to 0.46 (setup notes); the margin refuses a query that two enrolled
//! people (twins, or a poor capture) both resemble.

/// Embedding dimension (SFace).
pub const EMBEDDING_DIM: usize = 128;

/// Match decision thresholds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchConfig {
    /// Minimum cosine similarity of the best identity.
    pub threshold: f32,
    /// Minimum difference between the best and the second-best identity's scores.
    pub margin: f32,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            threshold: 0.5,
            margin: 0.1,
        }
    }
}

/// The outcome of matching one query.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchDecision {
    /// The best identity passed both the threshold and the margin.
    Match {
        /// The enrolled id.
        id: String,
        /// Its cosine score.
        score: f32,
        /// The runner-up's score (−1 when only one identity is enrolled).
        runner_up: f32,
    },
    /// The best score is below the threshold (or nothing is enrolled).
    NoMatch {
        /// The best score, if any identity is enrolled.
        best: Option<f32>,
    },
    /// Above the threshold but too close to the runner-up.
    Ambiguous {
        /// The best score.
        score: f32,
        /// The runner-up's score.
        runner_up: f32,
    },
}

/// L2-normalise in place; returns `false` (and leaves `v` unchanged) for a zero or
/// non-finite vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !n.is_finite() || n <= 1e-12 {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= n);
    true
}

/// Dot product of two embeddings, written with eight independent accumulators so the
/// compiler can keep them in SIMD registers (float addition is not reassociated for us).
#[inline]
pub fn dot(a: &[f32; EMBEDDING_DIM], b: &[f32; EMBEDDING_DIM]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for j in 0..8 {
            acc[j] += ca[j] * cb[j];
        }
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7])
}

/// Cosine similarity of two (not necessarily normalised) embeddings; 0 if either is zero.
pub fn cosine(a: &[f32; EMBEDDING_DIM], b: &[f32; EMBEDDING_DIM]) -> f32 {
    let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
    if na > 0.0 && nb > 0.0 {
        dot(a, b) / (na * nb)
    } else {
        0.0
    }
}

/// The in-memory gallery: ids and their normalised embeddings.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    ids: Vec<String>,
    data: Vec<f32>,
}

impl Matcher {
    /// An empty matcher.
    pub fn new() -> Matcher {
        Matcher::default()
    }

    /// An empty matcher with room for `n` identities.
    pub fn with_capacity(n: usize) -> Matcher {
        Matcher {
            ids: Vec::with_capacity(n),
            data: Vec::with_capacity(n * EMBEDDING_DIM),
        }
    }

    /// Number of identities.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no identity is enrolled.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Add (or replace) `id` with `embedding` (normalised here). Returns `false` and adds
    /// nothing for a zero or non-finite embedding.
    pub fn insert(&mut self, id: &str, embedding: &[f32; EMBEDDING_DIM]) -> bool {
        let mut e = *embedding;
        if !normalize(&mut e) {
            return false;
        }
        match self.ids.iter().position(|x| x == id) {
            Some(i) => self.data[i * EMBEDDING_DIM..(i + 1) * EMBEDDING_DIM].copy_from_slice(&e),
            None => {
                self.ids.push(id.to_owned());
                self.data.extend_from_slice(&e);
            }
        }
        true
    }

    /// Remove `id`; returns whether it was there. The memory of its embedding is
    /// overwritten (the last identity is moved into its place, then the tail is zeroed and
    /// truncated).
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.ids.iter().position(|x| x == id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        self.ids.swap_remove(i);
        if i != last {
            self.data.copy_within(
                last * EMBEDDING_DIM..(last + 1) * EMBEDDING_DIM,
                i * EMBEDDING_DIM,
            );
        }
        self.data[last * EMBEDDING_DIM..]
            .iter_mut()
            .for_each(|x| *x = 0.0);
        self.data.truncate(last * EMBEDDING_DIM);
        true
    }

    /// The best identity with its cosine score, and the runner-up's score (−1 when fewer
    /// than two identities are enrolled). `None` when the gallery is empty or the query is
    /// zero / not finite.
    pub fn best_two(&self, query: &[f32; EMBEDDING_DIM]) -> (Option<(&str, f32)>, f32) {
        let mut q = *query;
        if !normalize(&mut q) {
            return (None, -1.0);
        }
        let (mut best, mut best_i, mut second) = (f32::NEG_INFINITY, usize::MAX, f32::NEG_INFINITY);
        for (i, row) in self.data.chunks_exact(EMBEDDING_DIM).enumerate() {
            let Ok(row) = <&[f32; EMBEDDING_DIM]>::try_from(row) else {
                continue;
            };
            let s = dot(&q, row);
            if s > best {
                second = best;
                best = s;
                best_i = i;
            } else if s > second {
                second = s;
            }
        }
        let runner_up = if second.is_finite() { second } else { -1.0 };
        match self.ids.get(best_i) {
            Some(id) => (Some((id.as_str(), best)), runner_up),
            None => (None, -1.0),
        }
    }

    /// Decide with `cfg`'s threshold and margin.
    pub fn decide(&self, query: &[f32; EMBEDDING_DIM], cfg: &MatchConfig) -> MatchDecision {
        match self.best_two(query) {
            (None, _) => MatchDecision::NoMatch { best: None },
            (Some((_, score)), _) if score < cfg.threshold => {
                MatchDecision::NoMatch { best: Some(score) }
            }
            (Some((_, score)), runner_up) if score - runner_up < cfg.margin => {
                MatchDecision::Ambiguous { score, runner_up }
            }
            (Some((id, score)), runner_up) => MatchDecision::Match {
                id: id.to_owned(),
                score,
                runner_up,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_unit(rng: &mut rand::rngs::StdRng) -> [f32; EMBEDDING_DIM] {
        let mut v = [0.0f32; EMBEDDING_DIM];
        v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0..1.0));
        normalize(&mut v);
        v
    }

    /// `base` moved toward a random direction so that the cosine with `base` is `c`.
    fn at_cosine(
        base: &[f32; EMBEDDING_DIM],
        c: f32,
        rng: &mut rand::rngs::StdRng,
    ) -> [f32; EMBEDDING_DIM] {
        let mut r = random_unit(rng);
        let d = dot(&r, base);
        r.iter_mut().zip(base).for_each(|(x, b)| *x -= d * b);
        normalize(&mut r);
        let s = (1.0 - c * c).sqrt();
        let mut out = [0.0f32; EMBEDDING_DIM];
        for i in 0..EMBEDDING_DIM {
            out[i] = c * base[i] + s * r[i];
        }
        out
    }

    #[test]
    fn threshold_and_margin_decide() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let cfg = MatchConfig::default();
        let alice = random_unit(&mut rng);
        let mut m = Matcher::new();
        assert_eq!(
            m.decide(&alice, &cfg),
            MatchDecision::NoMatch { best: None }
        );
        m.insert("alice", &alice);
        m.insert("bob", &random_unit(&mut rng));
        // Same person (0.75): match.
        let q = at_cosine(&alice, 0.75, &mut rng);
        match m.decide(&q, &cfg) {
            MatchDecision::Match { id, score, .. } => {
                assert_eq!(id, "alice");
                assert!((score - 0.75).abs() < 1e-3);
            }
            d => panic!("{d:?}"),
        }
        // A stranger resembling alice at 0.46 (a masked face's worst case): no match.
        let q = at_cosine(&alice, 0.46, &mut rng);
        assert!(
            matches!(m.decide(&q, &cfg), MatchDecision::NoMatch { best: Some(s) } if (s - 0.46).abs() < 1e-3)
        );
        // A twin of alice enrolled: a query close to both is ambiguous.
        let twin = at_cosine(&alice, 0.95, &mut rng);
        m.insert("twin", &twin);
        let q = at_cosine(&alice, 0.8, &mut rng);
        assert!(
            matches!(m.decide(&q, &cfg), MatchDecision::Ambiguous { .. }),
            "{:?}",
            m.decide(&q, &cfg)
        );
        // Erased twin: alice matches again; erased alice: nothing does.
        assert!(m.remove("twin"));
        assert!(matches!(m.decide(&q, &cfg), MatchDecision::Match { ref id, .. } if id == "alice"));
        assert!(m.remove("alice"));
        assert!(!m.remove("alice"));
        assert!(matches!(m.decide(&q, &cfg), MatchDecision::NoMatch { .. }));
        assert_eq!(m.len(), 1);
        // Zero query and zero enrolment are refused.
        assert_eq!(m.best_two(&[0.0; EMBEDDING_DIM]).0, None);
        assert!(!m.insert("zero", &[0.0; EMBEDDING_DIM]));
    }

    #[test]
    fn best_two_matches_a_naive_scan() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut m = Matcher::new();
        let embs: Vec<_> = (0..500).map(|_| random_unit(&mut rng)).collect();
        for (i, e) in embs.iter().enumerate() {
            m.insert(&format!("id{i}"), e);
        }
        // Remove some to exercise swap_remove.
        for i in (0..500).step_by(7) {
            assert!(m.remove(&format!("id{i}")));
        }
        for _ in 0..20 {
            let q = random_unit(&mut rng);
            let mut scores: Vec<(f32, usize)> = embs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 7 != 0)
                .map(|(i, e)| (e.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(), i))
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (best, second) = m.best_two(&q);
            let (id, s) = best.expect("best");
            assert_eq!(id, format!("id{}", scores[0].1));
            assert!((s - scores[0].0).abs() < 1e-5 && (second - scores[1].0).abs() < 1e-5);
        }
    }

    #[test]
    fn matches_10k_identities_quickly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 10_000;
        let mut m = Matcher::with_capacity(n);
        let target = random_unit(&mut rng);
        for i in 0..n {
            if i == 6543 {
                m.insert("target", &target);
            } else {
                m.insert(&format!("id{i:05}"), &random_unit(&mut rng));
            }
        }
        let q = at_cosine(&target, 0.74, &mut rng);
        let cfg = MatchConfig::default();
        assert!(
            matches!(m.decide(&q, &cfg), MatchDecision::Match { ref id, .. } if id == "target")
        );
        let reps = 50u32;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(m.best_two(std::hint::black_box(&q)));
        }
        let per = t0.elapsed() / reps;
        println!(
            "best_two over {n} identities: {per:?} per query, {:.1} ns per identity",
            per.as_nanos() as f64 / n as f64
        );
        // Generous bound (shared CI cores, debug opt-level 1): a payment can afford 20 ms.
        assert!(per < std::time::Duration::from_millis(20), "{per:?}");
    }
}
