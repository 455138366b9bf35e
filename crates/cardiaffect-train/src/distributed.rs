//! Data-parallel pre-training: a group of processes (ranks) each compute the gradients of a
//! share of every step's batch; the gradients are summed over the group and every rank takes
//! the same optimizer step with the sum.
//!
//! A [`GradientReducer`] is all that carries data between ranks: one method that sums a flat
//! `f32` buffer over the group, in place. One process uses [`Alone`] (the identity); the
//! binary's `mpi` feature supplies one over MPI (`mpirun`, `srun`); [`local_group`] makes one
//! per thread of this process (the tests run a group in one process with it). Everything else
//! (the batch, masks, dropout, loss, schedule, optimizer, checkpoints) is the one trainer's,
//! [`crate::pretrain::pretrain_group`].
//!
//! Burn 0.22 has no collective across processes (its `DistributedContext` coordinates the
//! devices of one process, on CUDA alone), which is why the reducer is ours.

use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;

pub use crate::error::ReduceError;
use crate::TrainError;

/// Sums a buffer over the ranks of a group.
pub trait GradientReducer {
    /// Replace `buf` by its element-wise sum over all ranks. Every rank passes a buffer of the
    /// same length at the same point of the run and must get the same values back (to the
    /// bit: the ranks' weights stay identical only so).
    fn sum(&mut self, buf: &mut [f32]) -> Result<(), ReduceError>;
}

/// The reducer of a group of one: the sum over one rank is its own buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl GradientReducer for Alone {
    fn sum(&mut self, _buf: &mut [f32]) -> Result<(), ReduceError> {
        Ok(())
    }
}

/// Where this process sits in a data-parallel group, and what carries its sums.
pub struct Group {
    pub rank: usize,
    pub world_size: usize,
    pub reducer: Box<dyn GradientReducer>,
}

impl Group {
    /// One process on its own.
    pub fn alone() -> Group {
        Group {
            rank: 0,
            world_size: 1,
            reducer: Box::new(Alone),
        }
    }

    /// Rank `rank` of `world_size`, its sums by `reducer`.
    pub fn new(
        rank: usize,
        world_size: usize,
        reducer: Box<dyn GradientReducer>,
    ) -> Result<Group, TrainError> {
        if world_size == 0 {
            return Err(TrainError::Invalid {
                field: "world_size",
                value: "0".into(),
                expected: "at least 1 process",
            });
        }
        if rank >= world_size {
            return Err(TrainError::Invalid {
                field: "rank",
                value: rank.to_string(),
                expected: "a rank below the world size (0 .. world_size - 1)",
            });
        }
        Ok(Group {
            rank,
            world_size,
            reducer,
        })
    }

    /// This rank's rows of a batch of `batch` rows: contiguous, in rank order, sizes within
    /// one of each other (a world size need not divide the batch).
    pub fn rows(&self, batch: usize) -> Range<usize> {
        share(batch, self.world_size, self.rank)
    }

    /// Every rank's `values` (the same count on each), in rank order: each rank puts its own
    /// in its slot of a zeroed buffer, as 16-bit pieces that an `f32` holds exactly, and the
    /// sum over the group fills every slot.
    pub fn gather(&mut self, values: &[u64]) -> Result<Vec<Vec<u64>>, ReduceError> {
        let n = values.len() * 4;
        let mut buf = vec![0.0f32; n * self.world_size];
        for (i, v) in values.iter().enumerate() {
            for k in 0..4 {
                buf[self.rank * n + 4 * i + k] = ((v >> (16 * k)) & 0xFFFF) as f32;
            }
        }
        self.reducer.sum(&mut buf)?;
        Ok(buf
            .chunks(n.max(1))
            .take(self.world_size)
            .map(|slot| {
                slot.chunks(4)
                    .map(|p| (0..4).fold(0u64, |acc, k| acc | ((p[k] as u64 & 0xFFFF) << (16 * k))))
                    .collect()
            })
            .collect())
    }
}

/// Rows `r * batch / world .. (r + 1) * batch / world`.
pub fn share(batch: usize, world: usize, rank: usize) -> Range<usize> {
    (rank * batch / world)..((rank + 1) * batch / world)
}

/// One [`GradientReducer`] per rank of a group inside this process (one thread per rank):
/// each sum waits for every rank's buffer and adds them in rank order, so every rank gets the
/// same bits. A rank whose reducer is dropped before the others finish a sum ends their wait
/// with [`ReduceError::Left`] (as MPI ends a job whose rank died).
pub fn local_group(world_size: usize) -> Vec<LocalReducer> {
    let shared = Arc::new(Shared {
        round: Mutex::new(Round {
            buffers: vec![None; world_size],
            arrived: 0,
            generation: 0,
            result: Ok(Vec::new()),
            left: None,
        }),
        done: Condvar::new(),
    });
    (0..world_size)
        .map(|rank| LocalReducer {
            rank,
            shared: shared.clone(),
        })
        .collect()
}

struct Shared {
    round: Mutex<Round>,
    done: Condvar,
}

struct Round {
    buffers: Vec<Option<Vec<f32>>>,
    arrived: usize,
    generation: u64,
    /// The last completed round's sum (kept until every rank has read it: the next round
    /// cannot complete before they all come back).
    result: Result<Vec<f32>, ReduceError>,
    left: Option<usize>,
}

/// See [`local_group`].
pub struct LocalReducer {
    rank: usize,
    shared: Arc<Shared>,
}

impl GradientReducer for LocalReducer {
    fn sum(&mut self, buf: &mut [f32]) -> Result<(), ReduceError> {
        let mut r = self.shared.round.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rank) = r.left {
            return Err(ReduceError::Left { rank });
        }
        r.buffers[self.rank] = Some(buf.to_vec());
        r.arrived += 1;
        let generation = r.generation;
        if r.arrived == r.buffers.len() {
            let parts: Vec<Vec<f32>> = r.buffers.iter_mut().filter_map(Option::take).collect();
            let expected = parts[0].len();
            r.result = match parts.iter().position(|p| p.len() != expected) {
                Some(rank) => Err(ReduceError::Length {
                    rank,
                    found: parts[rank].len(),
                    expected,
                }),
                None => {
                    let mut total = parts[0].clone();
                    for p in &parts[1..] {
                        for (t, v) in total.iter_mut().zip(p) {
                            *t += v;
                        }
                    }
                    Ok(total)
                }
            };
            r.arrived = 0;
            r.generation += 1;
            self.shared.done.notify_all();
        } else {
            while r.generation == generation && r.left.is_none() {
                r = self.shared.done.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            if r.generation == generation {
                return Err(ReduceError::Left {
                    rank: r.left.unwrap_or(0),
                });
            }
        }
        match &r.result {
            Ok(total) => {
                buf.copy_from_slice(total);
                Ok(())
            }
            Err(ReduceError::Length {
                rank,
                found,
                expected,
            }) => Err(ReduceError::Length {
                rank: *rank,
                found: *found,
                expected: *expected,
            }),
            Err(_) => Err(ReduceError::Left { rank: self.rank }),
        }
    }
}

impl Drop for LocalReducer {
    fn drop(&mut self) {
        let mut r = self.shared.round.lock().unwrap_or_else(|p| p.into_inner());
        r.left.get_or_insert(self.rank);
        self.shared.done.notify_all();
    }
}

/// Where each parameter's gradient sits in a flat buffer ([`flatten`]).
pub(crate) struct Layout {
    params: Vec<(ParamId, Vec<usize>, usize)>,
    /// Where the presence flags start (one per parameter, after the values).
    flags: usize,
    device: Option<Device>,
}

impl Layout {
    /// Values and flags: where a caller may append its own numbers to sum.
    pub(crate) fn len(&self) -> usize {
        self.flags + self.params.len()
    }

    /// The gradients' values, before the flags.
    pub(crate) fn values(&self) -> usize {
        self.flags
    }
}

/// The gradients of `module`'s parameters in module order as one buffer: every parameter's
/// values (zeros where this rank has none), then one flag per parameter, 1 where this rank has
/// its gradient. Summed over the group, a parameter no rank has a gradient for stays without
/// one (the optimizer leaves it as it is, as on one process).
pub(crate) fn flatten<M: Module>(module: &M, mut grads: GradientsParams) -> (Vec<f32>, Layout) {
    struct Flatten<'a> {
        grads: &'a mut GradientsParams,
        values: Vec<f32>,
        flags: Vec<f32>,
        params: Vec<(ParamId, Vec<usize>, usize)>,
        device: Option<Device>,
    }
    impl ModuleVisitor for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let shape = param.shape().to_vec();
            let n: usize = shape.iter().product();
            let at = self.values.len();
            match self.grads.remove::<D>(param.id) {
                Some(g) => {
                    self.device.get_or_insert_with(|| g.device());
                    let v: Vec<f32> = g
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec()
                        .unwrap_or_default();
                    if v.len() == n {
                        self.values.extend_from_slice(&v);
                        self.flags.push(1.0);
                    } else {
                        self.values.resize(at + n, 0.0);
                        self.flags.push(0.0);
                    }
                }
                None => {
                    self.values.resize(at + n, 0.0);
                    self.flags.push(0.0);
                }
            }
            self.params.push((param.id, shape, at));
        }
    }
    let mut f = Flatten {
        grads: &mut grads,
        values: Vec::new(),
        flags: Vec::new(),
        params: Vec::new(),
        device: None,
    };
    module.visit(&mut f);
    let Flatten {
        mut values,
        flags,
        params,
        device,
        ..
    } = f;
    let layout = Layout {
        flags: values.len(),
        params,
        device,
    };
    values.extend_from_slice(&flags);
    (values, layout)
}

/// The summed buffer of [`flatten`] back as gradients on `device` (where no rank had one).
pub(crate) fn unflatten(buf: &[f32], layout: &Layout, device: &Device) -> GradientsParams {
    let device = layout.device.clone().unwrap_or_else(|| device.clone());
    let mut grads = GradientsParams::new();
    for (k, (id, shape, at)) in layout.params.iter().enumerate() {
        if buf[layout.flags + k] == 0.0 {
            continue;
        }
        let n: usize = shape.iter().product();
        let data = TensorData::new(buf[*at..at + n].to_vec(), shape.clone());
        macro_rules! register {
            ($($d:literal)*) => {
                match shape.len() {
                    $($d => grads.register::<$d>(*id, Tensor::<$d>::from_data(data, &device)),)*
                    _ => {}
                }
            };
        }
        register!(1 2 3 4 5 6);
    }
    grads
}

/// A hash of `module`'s float parameters' values in module order (FNV-1a over their bits):
/// ranks compare it to check that their weights are the same.
pub(crate) fn fingerprint<M: Module>(module: &M) -> u64 {
    struct Hash(u64);
    impl ModuleVisitor for Hash {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v: Vec<f32> = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .unwrap_or_default();
            for x in v {
                self.0 = (self.0 ^ x.to_bits() as u64).wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
    }
    let mut h = Hash(0xCBF2_9CE4_8422_2325);
    module.visit(&mut h);
    h.0
}

/// FNV-1a of bytes (configs, checksums) for [`Group::gather`].
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_a_batch_in_rank_order() {
        for (batch, world) in [(16, 2), (15, 2), (16, 3), (7, 7), (5, 4)] {
            let rows: Vec<Range<usize>> = (0..world).map(|r| share(batch, world, r)).collect();
            assert_eq!(rows[0].start, 0);
            assert_eq!(rows[world - 1].end, batch);
            for w in rows.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let sizes: Vec<usize> = rows.iter().map(|r| r.len()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn a_local_group_sums_gathers_and_names_a_rank_that_left() {
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = local_group(3)
                .into_iter()
                .enumerate()
                .map(|(rank, r)| {
                    s.spawn(move || {
                        let mut g = Group::new(rank, 3, Box::new(r)).unwrap();
                        let mut buf = vec![rank as f32, 1.0, 0.5];
                        g.reducer.sum(&mut buf).unwrap();
                        let all = g.gather(&[u64::MAX - rank as u64, 7]).unwrap();
                        (buf, all)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (buf, all) in &results {
            assert_eq!(buf, &vec![3.0, 3.0, 1.5]);
            assert_eq!(all.len(), 3);
            for (rank, v) in all.iter().enumerate() {
                assert_eq!(v, &vec![u64::MAX - rank as u64, 7]);
            }
        }
        // Rank 1 goes away: rank 0's sum ends with an error naming it.
        let mut rs = local_group(2);
        let r1 = rs.pop().unwrap();
        let mut r0 = rs.pop().unwrap();
        let t = std::thread::spawn(move || r0.sum(&mut [1.0]));
        drop(r1);
        match t.join().unwrap() {
            Err(ReduceError::Left { rank: 1 }) => {}
            other => panic!("{other:?}"),
        }
        assert!(Group::new(2, 2, Box::new(Alone)).is_err());
    }
}
