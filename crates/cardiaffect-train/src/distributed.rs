//! Pre-training on several processes (`--world-size`, `--rank`, `--coordinator`): what Burn
//! 0.22 can do, checked before a run starts, so that a group that cannot train together fails
//! at once, naming why, and writes nothing.
//!
//! What Burn 0.22 offers (read in its sources, 0.22.1):
//! - `burn::tensor::distributed::DistributedContext::init(devices, config)` and `all_reduce`
//!   work over the devices of **one process** (an in-process server fed by a channel); there is
//!   no rank, world size or address in the API, and no transport between processes
//!   (`burn-collective`, which had one, was removed before 0.22; `burn-remote`'s all-reduce
//!   panics "cross-peer all_reduce is not supported yet").
//! - Only the CUDA backend implements `DistributedOps` (NCCL, within one process). Flex, the
//!   default backend here, leaves it at its default: `DistributedContext::init` panics
//!   "Distributed operations are not supported for device ...".
//!
//! So a group of processes cannot average gradients with Burn's own collective here, and the
//! issue rules out a home-made all-reduce over sockets: `world_size > 1` is refused, with Burn's
//! own message from [`probe_collective`].

use burn::prelude::Device;

use crate::TrainError;

/// Where this process sits in a data-parallel group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub world_size: usize,
    pub rank: usize,
    /// `HOST:PORT` of rank 0, for groups of more than one process.
    pub coordinator: Option<String>,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            world_size: 1,
            rank: 0,
            coordinator: None,
        }
    }
}

impl Group {
    /// Sizes that fit together; fields are named as the config names them.
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |field, value: String, expected| TrainError::Invalid {
            field,
            value,
            expected,
        };
        if self.world_size == 0 {
            return Err(invalid("world_size", "0".into(), "at least 1 process"));
        }
        if self.rank >= self.world_size {
            return Err(invalid(
                "rank",
                self.rank.to_string(),
                "a rank below the world size (0 .. world_size - 1)",
            ));
        }
        if self.world_size > 1 {
            match &self.coordinator {
                None => {
                    return Err(invalid(
                        "coordinator",
                        "(not given)".into(),
                        "HOST:PORT of rank 0 for a group of more than one process",
                    ))
                }
                Some(c)
                    if !c
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
                {
                    return Err(invalid("coordinator", c.clone(), "HOST:PORT"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether this group can train on `device`: one process always can; more need a
    /// collective across processes, which Burn 0.22 does not have (see the module's doc).
    pub fn check_supported(&self, device: &Device) -> Result<(), TrainError> {
        self.validate()?;
        if self.world_size == 1 {
            return Ok(());
        }
        let burn_says = match probe_collective(device) {
            Ok(()) => {
                "its collective started on this backend, but only across the devices of one process"
                    .to_string()
            }
            Err(m) => format!("Burn's own attempt on this backend: \"{m}\""),
        };
        Err(TrainError::Data(format!(
            "‹world_size› {}: Burn 0.22 cannot average gradients across processes: its distributed API (DistributedContext, all_reduce) works over the devices of one process only, implemented for CUDA alone; flex has none ({burn_says}). Train with ‹world_size› 1; nothing was written",
            self.world_size
        )))
    }
}

/// Start Burn's collective over two handles of `device` and close it again: `Err` with Burn's
/// message where the backend has none (Burn panics there; the panic is caught and its message
/// returned, nothing printed).
pub fn probe_collective(device: &Device) -> Result<(), String> {
    use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
    let devices = vec![device.clone(), device.clone()];
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(move || {
        drop(DistributedContext::init(
            devices,
            DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            },
        ));
    });
    std::panic::set_hook(hook);
    r.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_trains_and_bad_groups_are_named() {
        let d = Device::flex();
        assert!(Group::default().check_supported(&d).is_ok());
        let g = |w, r, c: Option<&str>| Group {
            world_size: w,
            rank: r,
            coordinator: c.map(str::to_string),
        };
        let e = g(2, 2, Some("127.0.0.1:29500"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("‹rank› 2") && e.contains("below the world size"),
            "{e}"
        );
        let e = g(0, 0, None).validate().unwrap_err().to_string();
        assert!(e.contains("‹world_size› 0"), "{e}");
        let e = g(2, 0, None).validate().unwrap_err().to_string();
        assert!(e.contains("‹coordinator›"), "{e}");
        let e = g(2, 0, Some("nohost")).validate().unwrap_err().to_string();
        assert!(e.contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn a_group_on_flex_is_refused_with_burns_own_message() {
        let d = Device::flex();
        let m = probe_collective(&d).unwrap_err();
        assert!(m.contains("not supported"), "{m}");
        let e = Group {
            world_size: 2,
            rank: 1,
            coordinator: Some("127.0.0.1:29500".into()),
        }
        .check_supported(&d)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("across processes") && e.contains("not supported"),
            "{e}"
        );
    }
}
