//! Face alignment: a least-squares similarity transform (rotation, uniform scale,
//! translation; 4 degrees of freedom, no reflection) of the detector's five landmarks onto
//! the standard ArcFace 112×112 template, and the bilinear warp that produces the aligned
//! crop the embedder takes.
//!
//! Landmark order everywhere in `face`: right eye, left eye, nose tip, right mouth corner,
//! left mouth corner (YuNet/OpenCV order; "right" is the subject's right, which appears on
//! the image's left in an unmirrored camera frame).

use image::{Rgb, RgbImage};

/// Side of the aligned face crop in pixels.
pub const ALIGNED_SIZE: u32 = 112;

/// The ArcFace 112×112 template positions of the five landmarks (same order as
/// [`Face::landmarks`]).
pub const ARCFACE_TEMPLATE: [(f32, f32); 5] = [
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
];

/// Landmark indices.
pub const RIGHT_EYE: usize = 0;
/// Left eye (subject's left; image right).
pub const LEFT_EYE: usize = 1;
/// Nose tip.
pub const NOSE: usize = 2;
/// Right mouth corner (subject's right; image left).
pub const RIGHT_MOUTH: usize = 3;
/// Left mouth corner (subject's left; image right).
pub const LEFT_MOUTH: usize = 4;

/// One detected face, in image pixels, as the detector reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Bounding box `[x, y, w, h]` (top-left corner, width, height).
    pub bbox: [f32; 4],
    /// Detector confidence in `[0, 1]`.
    pub score: f32,
    /// The five landmarks, in the order of [`ARCFACE_TEMPLATE`].
    pub landmarks: [(f32, f32); 5],
}

/// A 2-D similarity transform `p ↦ [a −b; b a]·p + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `scale · cos(angle)`.
    pub a: f32,
    /// `scale · sin(angle)`.
    pub b: f32,
    /// Translation, x.
    pub tx: f32,
    /// Translation, y.
    pub ty: f32,
}

impl Similarity {
    /// The identity transform.
    pub const IDENTITY: Similarity = Similarity {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// Build from scale, rotation angle (radians, counter-clockwise in a y-up frame, i.e.
    /// clockwise on screen) and translation.
    pub fn from_parts(scale: f32, angle: f32, tx: f32, ty: f32) -> Similarity {
        Similarity {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx,
            ty,
        }
    }

    /// Apply to a point.
    #[inline]
    pub fn apply(&self, p: (f32, f32)) -> (f32, f32) {
        (
            self.a * p.0 - self.b * p.1 + self.tx,
            self.b * p.0 + self.a * p.1 + self.ty,
        )
    }

    /// Uniform scale factor.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }

    /// Rotation angle in radians.
    pub fn angle(&self) -> f32 {
        self.b.atan2(self.a)
    }

    /// The inverse transform, or `None` when the scale is (nearly) zero.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if !d.is_finite() || d <= 1e-12 {
            return None;
        }
        let (ia, ib) = (self.a / d, -self.b / d);
        Some(Similarity {
            a: ia,
            b: ib,
            tx: -(ia * self.tx - ib * self.ty),
            ty: -(ib * self.tx + ia * self.ty),
        })
    }

    /// Root-mean-square distance between the transformed `src` points and `dst`.
    pub fn rms_residual(&self, src: &[(f32, f32)], dst: &[(f32, f32)]) -> f32 {
        let n = src.len().min(dst.len());
        if n == 0 {
            return 0.0;
        }
        let s: f64 = src
            .iter()
            .zip(dst)
            .map(|(&p, &q)| {
                let m = self.apply(p);
                let (dx, dy) = (f64::from(m.0 - q.0), f64::from(m.1 - q.1));
                dx * dx + dy * dy
            })
            .sum();
        (s / n as f64).sqrt() as f32
    }
}

/// Least-squares similarity transform taking `src` onto `dst` (Umeyama's method restricted
/// to 2-D rotations without reflection). Returns `None` when fewer than two point pairs are
/// given, the lengths differ, a coordinate is not finite, or the `src` points coincide.
pub fn estimate_similarity(src: &[(f32, f32)], dst: &[(f32, f32)]) -> Option<Similarity> {
    let n = src.len();
    if n < 2 || dst.len() != n {
        return None;
    }
    if src
        .iter()
        .chain(dst)
        .any(|p| !p.0.is_finite() || !p.1.is_finite())
    {
        return None;
    }
    let nf = n as f64;
    let (mut msx, mut msy, mut mdx, mut mdy) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (p, q) in src.iter().zip(dst) {
        msx += f64::from(p.0);
        msy += f64::from(p.1);
        mdx += f64::from(q.0);
        mdy += f64::from(q.1);
    }
    msx /= nf;
    msy /= nf;
    mdx /= nf;
    mdy /= nf;
    // With centred points u (source) and v (destination), minimising Σ|R·u − v|² over
    // R = [a −b; b a] gives a = Σ(u·v)/Σ|u|², b = Σ(u×v)/Σ|u|².
    let (mut var, mut dot, mut cross) = (0.0f64, 0.0f64, 0.0f64);
    for (p, q) in src.iter().zip(dst) {
        let (ux, uy) = (f64::from(p.0) - msx, f64::from(p.1) - msy);
        let (vx, vy) = (f64::from(q.0) - mdx, f64::from(q.1) - mdy);
        var += ux * ux + uy * uy;
        dot += ux * vx + uy * vy;
        cross += ux * vy - uy * vx;
    }
    if var.is_nan() || var <= 1e-9 {
        return None;
    }
    let a = dot / var;
    let b = cross / var;
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    Some(Similarity {
        a: a as f32,
        b: b as f32,
        tx: tx as f32,
        ty: ty as f32,
    })
}

/// The alignment of one face: the transform from image pixels to the 112×112 template
/// frame and how well the five landmarks fit it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Image → template transform.
    pub transform: Similarity,
    /// RMS landmark residual after the fit, in template pixels (112×112 frame).
    pub residual: f32,
}

/// Fit the landmarks onto [`ARCFACE_TEMPLATE`]; `None` for degenerate landmarks.
pub fn alignment(landmarks: &[(f32, f32); 5]) -> Option<Alignment> {
    let transform = estimate_similarity(landmarks, &ARCFACE_TEMPLATE)?;
    let residual = transform.rms_residual(landmarks, &ARCFACE_TEMPLATE);
    Some(Alignment {
        transform,
        residual,
    })
}

/// Warp `img` into a `size`×`size` crop by `transform` (image → crop), sampling bilinearly
/// through the inverse map; pixels that fall outside the image are black. A degenerate
/// transform gives an all-black crop.
pub fn warp(img: &RgbImage, transform: &Similarity, size: u32) -> RgbImage {
    warp_rect(img, transform, size, size)
}

/// [`warp`] into a `width`×`height` output (e.g. a whole camera frame: moving a photo in
/// front of the camera is this warp).
pub fn warp_rect(img: &RgbImage, transform: &Similarity, width: u32, height: u32) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    if width == 0 || height == 0 {
        return out;
    }
    let Some(inv) = transform.inverse() else {
        return out;
    };
    let (w, h) = (img.width() as i64, img.height() as i64);
    if w == 0 || h == 0 {
        return out;
    }
    let src = img.as_raw();
    let stride = (w * 3) as usize;
    let dst = &mut *out;
    let row_len = width as usize * 3;
    for (v, row) in dst.chunks_exact_mut(row_len).enumerate() {
        // Source position of (0, v), and its step per output column: (a, b).
        let (mut sx, mut sy) = inv.apply((0.0, v as f32));
        for px in row.chunks_exact_mut(3) {
            // Truncation is floor for non-negative values and avoids a libm call (no
            // SSE4.1 rounding on baseline x86-64); negative positions take `floor`.
            let x0f = if sx >= 0.0 {
                (sx as i64) as f32
            } else {
                sx.floor()
            };
            let y0f = if sy >= 0.0 {
                (sy as i64) as f32
            } else {
                sy.floor()
            };
            let (fx, fy) = (sx - x0f, sy - y0f);
            let (x0, y0) = (x0f as i64, y0f as i64);
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                let i00 = y0 as usize * stride + x0 as usize * 3;
                let i10 = i00 + 3;
                let i01 = i00 + stride;
                let i11 = i01 + 3;
                for c in 0..3 {
                    let top = f32::from(src[i00 + c]) * (1.0 - fx) + f32::from(src[i10 + c]) * fx;
                    let bot = f32::from(src[i01 + c]) * (1.0 - fx) + f32::from(src[i11 + c]) * fx;
                    px[c] = (top * (1.0 - fy) + bot * fy + 0.5).clamp(0.0, 255.0) as u8;
                }
            } else if x0 >= -1 && y0 >= -1 && x0 < w && y0 < h {
                // Border: missing neighbours count as black.
                let mut acc = [0.0f32; 3];
                for (dx, dy, wgt) in [
                    (0, 0, (1.0 - fx) * (1.0 - fy)),
                    (1, 0, fx * (1.0 - fy)),
                    (0, 1, (1.0 - fx) * fy),
                    (1, 1, fx * fy),
                ] {
                    let (x, y) = (x0 + dx, y0 + dy);
                    if x >= 0 && y >= 0 && x < w && y < h {
                        let Rgb(p) = *img.get_pixel(x as u32, y as u32);
                        for c in 0..3 {
                            acc[c] += f32::from(p[c]) * wgt;
                        }
                    }
                }
                for c in 0..3 {
                    px[c] = (acc[c] + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
            sx += inv.a;
            sy += inv.b;
        }
    }
    out
}

/// The aligned 112×112 RGB face the embedder takes: the landmarks' least-squares
/// similarity onto [`ARCFACE_TEMPLATE`], then a bilinear warp. Degenerate landmarks (all
/// in one point, or not finite) give an all-black crop; the quality gate refuses those
/// faces before this is called.
pub fn align_112(img: &RgbImage, landmarks: &[(f32, f32); 5]) -> RgbImage {
    match alignment(landmarks) {
        Some(al) => warp(img, &al.transform, ALIGNED_SIZE),
        None => RgbImage::new(ALIGNED_SIZE, ALIGNED_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(p: (f32, f32), q: (f32, f32), tol: f32) -> bool {
        (p.0 - q.0).abs() <= tol && (p.1 - q.1).abs() <= tol
    }

    #[test]
    fn template_maps_onto_itself() {
        let al = alignment(&ARCFACE_TEMPLATE).expect("fit");
        let t = al.transform;
        assert!((t.a - 1.0).abs() < 1e-5 && t.b.abs() < 1e-5, "{t:?}");
        assert!(t.tx.abs() < 1e-3 && t.ty.abs() < 1e-3, "{t:?}");
        assert!(al.residual < 1e-4);
    }

    #[test]
    fn rotated_scaled_template_is_recovered() {
        // Place the template into an image by a known similarity (scale 3.1, 23°, shift),
        // then fit back: the fit must be that transform's inverse with ~0 residual.
        let known = Similarity::from_parts(3.1, 23f32.to_radians(), 412.0, -37.5);
        let pts = ARCFACE_TEMPLATE.map(|p| known.apply(p));
        let al = alignment(&pts).expect("fit");
        assert!(al.residual < 1e-3, "residual {}", al.residual);
        assert!((al.transform.scale() - 1.0 / 3.1).abs() < 1e-5);
        assert!((al.transform.angle() + 23f32.to_radians()).abs() < 1e-5);
        for (p, q) in pts.iter().zip(ARCFACE_TEMPLATE) {
            assert!(close(al.transform.apply(*p), q, 1e-3));
        }
        // With a non-similar perturbation (one point moved 6 px in the image = ~2 template
        // px) the residual is positive but the fit stays close.
        let mut bent = pts;
        bent[NOSE].0 += 6.0;
        let al2 = alignment(&bent).expect("fit");
        assert!(
            al2.residual > 0.5 && al2.residual < 2.0,
            "residual {}",
            al2.residual
        );
    }

    #[test]
    fn inverse_round_trips() {
        let t = Similarity::from_parts(0.37, -1.2, 5.0, 9.0);
        let i = t.inverse().expect("invertible");
        for p in [(0.0, 0.0), (100.0, -3.0), (-7.5, 44.0)] {
            assert!(close(i.apply(t.apply(p)), p, 1e-3));
        }
        assert!(Similarity::from_parts(0.0, 0.0, 1.0, 1.0)
            .inverse()
            .is_none());
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        assert!(alignment(&[(5.0, 5.0); 5]).is_none());
        let mut nan = ARCFACE_TEMPLATE;
        nan[2].0 = f32::NAN;
        assert!(alignment(&nan).is_none());
        let img = RgbImage::from_pixel(50, 50, Rgb([200, 200, 200]));
        assert!(align_112(&img, &[(5.0, 5.0); 5])
            .pixels()
            .all(|p| p.0 == [0, 0, 0]));
    }

    #[test]
    fn warp_puts_marked_landmarks_on_the_template() {
        // Draw a bright dot at each landmark of a face placed by a known transform in a
        // 640×480 image; after alignment each dot must be at its template position.
        let known = Similarity::from_parts(2.4, 0.3, 250.0, 90.0);
        let pts = ARCFACE_TEMPLATE.map(|p| known.apply(p));
        let mut img = RgbImage::new(640, 480);
        for &(x, y) in &pts {
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    let (px, py) = (
                        (x.round() as i32 + dx) as u32,
                        (y.round() as i32 + dy) as u32,
                    );
                    img.put_pixel(px, py, Rgb([255, 255, 255]));
                }
            }
        }
        let out = align_112(&img, &pts);
        assert_eq!(out.dimensions(), (112, 112));
        for &(x, y) in &ARCFACE_TEMPLATE {
            let p = out.get_pixel(x.round() as u32, y.round() as u32);
            assert!(p.0[0] > 200, "dot missing at ({x},{y}): {p:?}");
        }
        // And away from the dots it is dark.
        assert!(out.get_pixel(56, 20).0[0] < 10);
    }

    #[test]
    fn align_is_fast() {
        let img = RgbImage::from_fn(640, 480, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
        let pts = ARCFACE_TEMPLATE.map(|p| Similarity::from_parts(2.0, 0.1, 200.0, 100.0).apply(p));
        let t0 = std::time::Instant::now();
        let n = 200;
        for _ in 0..n {
            std::hint::black_box(align_112(&img, &pts));
        }
        let per = t0.elapsed() / n;
        println!("align_112: {per:?} per face");
        assert!(per < std::time::Duration::from_millis(5), "{per:?}");
    }
}
