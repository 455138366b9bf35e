//! `pretrain` started by an MPI launcher (`mpirun`, `srun --mpi=pmix`): the group is MPI's
//! world, and MPI's all-reduce sums the gradients (feature `mpi`; the `mpi` crate over the
//! system's Open MPI or MPICH). The launcher is recognised by the variables it gives each
//! rank, so that the same binary started by hand is one process and never starts MPI.

use anyhow::{bail, Result};
use cardiaffect_train::distributed::{GradientReducer, Group, ReduceError};
use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

/// Variables an MPI launcher sets in each rank's environment: Open MPI's mpirun, PMIx (srun
/// --mpi=pmix, prterun), PMI-1/2 (MPICH's hydra, srun --mpi=pmi2).
const LAUNCHER_VARS: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"];

/// Whether an MPI launcher started this process.
pub fn launched() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// MPI, started for this process's lifetime (finalised when dropped).
pub struct World {
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
}

impl World {
    /// Start MPI (gradients are summed from the main thread alone, the kernels' threads never
    /// call MPI: "funneled").
    pub fn init() -> Result<World> {
        let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
            bail!("MPI was already started in this process");
        };
        let world = universe.world();
        Ok(World {
            _universe: universe,
            world,
        })
    }

    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// This rank's place in the group, its sums over MPI_COMM_WORLD.
    pub fn group(&self) -> Result<Group> {
        Ok(Group::new(
            self.rank(),
            self.size(),
            Box::new(MpiSum(self.world.duplicate())),
        )?)
    }

    /// End every rank of the job (MPI_Abort): a rank that returned on an error would otherwise
    /// leave the others waiting in their next sum, or in MPI_Finalize.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// MPI_Allreduce with MPI_SUM over a communicator of its own (the run's sums never mix with
/// other traffic).
struct MpiSum(SimpleCommunicator);

impl GradientReducer for MpiSum {
    fn sum(&mut self, buf: &mut [f32]) -> Result<(), ReduceError> {
        // MPI's default error handler ends the job on a failure (a dead rank included), so
        // there is no error to return here.
        let send = buf.to_vec();
        self.0
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
}
