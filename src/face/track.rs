//! A small tracker that gives each face a stable id over consecutive frames. A face keeps
//! its id only while it moves plausibly (overlapping box, centre within a fraction of the
//! box size, similar size) and is seen at least every `max_gap_ms`; a face that jumps,
//! changes size abruptly or disappears for longer gets a new id. The liveness challenge
//! requires one id from start to end, so a photo swapped in or a second person stepping in
//! restarts it.

/// Identifier of one track; never reused by a [`Tracker`].
pub type TrackId = u64;

/// Tracker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Minimum intersection-over-union with the track's last box.
    pub min_iou: f32,
    /// Largest centre move between two observations, as a fraction of the last box's
    /// larger side.
    pub max_centre_jump: f32,
    /// Largest size change between two observations (ratio of box sides, ≥ 1).
    pub max_size_ratio: f32,
    /// A track not seen for longer than this is dropped, ms.
    pub max_gap_ms: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_iou: 0.3,
            max_centre_jump: 0.35,
            max_size_ratio: 1.4,
            max_gap_ms: 300,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Track {
    id: TrackId,
    bbox: [f32; 4],
    last_ms: u64,
}

/// The tracker. Feed it every frame's face boxes (`[x, y, w, h]`, image pixels).
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: TrackId,
}

/// Intersection over union of two `[x, y, w, h]` boxes (0 for empty or disjoint boxes).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

impl Tracker {
    /// A tracker with no tracks.
    pub fn new(cfg: TrackerConfig) -> Tracker {
        Tracker {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// Number of live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// Whether there are no live tracks.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Forget every track (the next faces get new ids).
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    fn compatible(&self, t: &Track, b: &[f32; 4]) -> Option<f32> {
        if !b.iter().all(|v| v.is_finite()) || b[2] <= 0.0 || b[3] <= 0.0 {
            return None;
        }
        let o = iou(&t.bbox, b);
        if o < self.cfg.min_iou {
            return None;
        }
        let (tcx, tcy) = (t.bbox[0] + t.bbox[2] / 2.0, t.bbox[1] + t.bbox[3] / 2.0);
        let (cx, cy) = (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
        let side = t.bbox[2].max(t.bbox[3]);
        if (cx - tcx).hypot(cy - tcy) > self.cfg.max_centre_jump * side {
            return None;
        }
        let r = (b[2] * b[3] / (t.bbox[2] * t.bbox[3])).sqrt();
        if r > self.cfg.max_size_ratio || r < 1.0 / self.cfg.max_size_ratio {
            return None;
        }
        Some(o)
    }

    /// Assign a track id to each box of this frame (same order as `boxes`). Boxes are
    /// matched to the previous tracks greedily by IoU; an unmatched box starts a new track;
    /// tracks not seen within `max_gap_ms` are dropped.
    pub fn update(&mut self, now_ms: u64, boxes: &[[f32; 4]]) -> Vec<TrackId> {
        let gap = self.cfg.max_gap_ms;
        self.tracks
            .retain(|t| now_ms.saturating_sub(t.last_ms) <= gap);
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (bi, b) in boxes.iter().enumerate() {
                if let Some(o) = self.compatible(t, b) {
                    pairs.push((o, ti, bi));
                }
            }
        }
        pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
        let mut ids: Vec<Option<TrackId>> = vec![None; boxes.len()];
        let mut used = vec![false; self.tracks.len()];
        for (_, ti, bi) in pairs {
            if used[ti] || ids[bi].is_some() {
                continue;
            }
            used[ti] = true;
            ids[bi] = Some(self.tracks[ti].id);
            self.tracks[ti].bbox = boxes[bi];
            self.tracks[ti].last_ms = now_ms;
        }
        // Matched tracks stay; tracks that lost their face this frame stay until the gap
        // expires (a detector miss of a frame or two), but never take a jumped face.
        ids.iter()
            .zip(boxes)
            .map(|(id, b)| match id {
                Some(id) => *id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id,
                        bbox: *b,
                        last_ms: now_ms,
                    });
                    id
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_moves_keep_the_id() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut b = [100.0, 100.0, 150.0, 180.0];
        let first = t.update(0, &[b])[0];
        for i in 1..30u64 {
            b[0] += 6.0; // 90 px/s at 15 fps: a shopper shifting
            b[1] -= 2.0;
            b[2] *= 1.01;
            b[3] *= 1.01;
            assert_eq!(t.update(i * 66, &[b]), vec![first], "frame {i}");
        }
    }

    #[test]
    fn jump_size_change_or_gap_starts_a_new_track() {
        let cfg = TrackerConfig::default();
        let mut t = Tracker::new(cfg);
        let b = [100.0, 100.0, 150.0, 180.0];
        let a = t.update(0, &[b])[0];
        // Jump by most of a box width: new id.
        let j = t.update(66, &[[200.0, 100.0, 150.0, 180.0]])[0];
        assert_ne!(a, j);
        // Same place but twice the size (a photo brought close): new id.
        let s = t.update(132, &[[125.0, 100.0, 300.0, 360.0]])[0];
        assert_ne!(s, j);
        // Disappears for longer than the gap, then reappears in the same place: new id.
        let before = t.update(200, &[[125.0, 100.0, 300.0, 360.0]])[0];
        assert_eq!(before, s);
        let after = t.update(200 + cfg.max_gap_ms + 1, &[[125.0, 100.0, 300.0, 360.0]])[0];
        assert_ne!(after, before);
        // A one-frame detector miss within the gap keeps the id.
        let k = t.update(200 + cfg.max_gap_ms + 100, &[[127.0, 101.0, 300.0, 360.0]])[0];
        assert_eq!(k, after);
    }

    #[test]
    fn two_faces_keep_their_own_ids() {
        let mut t = Tracker::new(TrackerConfig::default());
        let ids = t.update(0, &[[0.0, 0.0, 100.0, 100.0], [300.0, 0.0, 100.0, 100.0]]);
        // Reported in the other order, moved a little.
        let ids2 = t.update(66, &[[305.0, 2.0, 100.0, 100.0], [4.0, 1.0, 100.0, 100.0]]);
        assert_eq!(ids2, vec![ids[1], ids[0]]);
        assert_eq!(t.len(), 2);
        assert!(iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 10.0, 10.0]) - 1.0 / 3.0 < 1e-6);
    }
}
