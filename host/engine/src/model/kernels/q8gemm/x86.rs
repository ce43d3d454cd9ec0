//! The AVX512-VNNI tile (see the parent module for the layout).

use super::{Acc, NT, Q8Acts, Q8Weights, QK};
use std::arch::x86_64::*;

/// R rows × 16 columns over all blocks. Each 64-byte weight load feeds R `vpdpbusd`s.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn tile<const R: usize>(w: &Q8Weights, a: &Q8Acts, r0: usize, t: usize, out: &mut Acc) {
    let (k, nb) = (a.k, w.nb);
    let mut acc = [_mm512_setzero_ps(); R];
    let wq = w.qs[t * nb * 8 * 64..].as_ptr();
    let ap: [*const u8; R] = std::array::from_fn(|r| a.au[(r0 + r) * k..].as_ptr());
    for b in 0..nb {
        let mut p = [_mm512_setzero_si512(); R];
        for g in 0..8 {
            // SAFETY: the tile holds nb·8 groups of 64 bytes; each row holds k bytes.
            unsafe {
                let wv = _mm512_loadu_si512(wq.add((b * 8 + g) * 64) as *const _);
                for r in 0..R {
                    let word = (ap[r].add(b * QK + g * 4) as *const i32).read_unaligned();
                    p[r] = _mm512_dpbusd_epi32(p[r], _mm512_set1_epi32(word), wv);
                }
            }
        }
        let at = (t * nb + b) * NT;
        // SAFETY: per-block constants hold NT floats at `at`.
        let (dw, cw, mw) = unsafe {
            (
                _mm512_loadu_ps(w.d.as_ptr().add(at)),
                _mm512_loadu_ps(w.c.as_ptr().add(at)),
                _mm512_loadu_ps(w.m.as_ptr().add(at)),
            )
        };
        for r in 0..R {
            let da = _mm512_set1_ps(a.d[(r0 + r) * nb + b]);
            let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[r]), dw, cw);
            acc[r] = _mm512_fmadd_ps(v, da, acc[r]);
            if w.has_min {
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a.s[(r0 + r) * nb + b]), mw, acc[r]);
            }
        }
    }
    for r in 0..R {
        // SAFETY: out[r] has NT = 16 floats.
        unsafe { _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]) };
    }
}
