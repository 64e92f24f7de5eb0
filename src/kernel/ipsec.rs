//! [`Ipsec`]: the [`KernelIpsec`] logic shared by every backend — validation, policy
//! reference counting, rollback of half-done installs, bookkeeping of what is installed.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use super::KernelIpsec;
use super::error::{KernelError, Target};
use super::spec::{PolicyAction, PolicyKey, PolicySpec, SaId, SaSpec, policy_specs, shunt_specs};
use super::types::{
    ChildCounters, ChildId, ChildPolicy, ChildSaInstall, Counters, FlushReport, IpsecProto, Mark,
    ShuntPolicy,
};

/// Primitive kernel operations; implemented over XFRM netlink and in memory.
pub trait XfrmBackend {
    /// Adds an SA; one with the same id already there is [`KernelError::Exists`] (for an
    /// inbound SA: our SPI collides with one the kernel has).
    fn add_sa(&mut self, sa: &SaSpec<'_>) -> Result<(), KernelError>;
    /// Deletes the SA of protocol `proto` (ESP or AH) installed with `mark`.
    fn del_sa(
        &mut self,
        id: SaId,
        proto: IpsecProto,
        mark: Option<Mark>,
    ) -> Result<(), KernelError>;
    /// Reads the counters of the SA of protocol `proto` installed with `mark`.
    fn sa_counters(
        &mut self,
        id: SaId,
        proto: IpsecProto,
        mark: Option<Mark>,
    ) -> Result<Counters, KernelError>;
    /// Adds a policy, or with `replace` replaces the one with the same key.
    fn put_policy(&mut self, spec: &PolicySpec, replace: bool) -> Result<(), KernelError>;
    /// Deletes a policy.
    fn del_policy(&mut self, key: &PolicyKey) -> Result<(), KernelError>;
    /// Deletes every SA and policy that belongs to ikev2d (reqid in the reserved range),
    /// whoever's bookkeeping knows about it.
    fn flush_ours(&mut self) -> Result<FlushReport, KernelError>;
    /// Adds `addr` to `lo` (host prefix); one already there is [`KernelError::Exists`].
    fn add_address(&mut self, addr: IpAddr) -> Result<(), KernelError>;
    /// Deletes `addr` from `lo`.
    fn del_address(&mut self, addr: IpAddr) -> Result<(), KernelError>;
}

/// Who holds a reference on a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Child(ChildId),
    Trap(u32),
}

/// What one holder wants installed under a policy's key (its spec without the key, which
/// the table has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    priority: u32,
    action: PolicyAction,
}

impl Rule {
    fn of(spec: &PolicySpec) -> Self {
        Self {
            priority: spec.priority,
            action: spec.action,
        }
    }

    fn spec(self, key: PolicyKey) -> PolicySpec {
        PolicySpec {
            key,
            priority: self.priority,
            action: self.action,
        }
    }
}

/// An installed policy: its key and its holders, the last one's rule being what the kernel
/// has. Kept boxed in a set by key, so that a big table's free slots cost a pointer each, not
/// a key and a list.
#[derive(Debug)]
struct Held {
    key: PolicyKey,
    holders: Vec<(Owner, Rule)>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Held {}

impl Hash for Held {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl Borrow<PolicyKey> for Box<Held> {
    fn borrow(&self) -> &PolicyKey {
        &self.key
    }
}

#[derive(Debug)]
struct InstalledChild {
    sa_in: (SaId, Option<Mark>),
    sa_out: (SaId, Option<Mark>),
    proto: IpsecProto,
    policies: Box<[PolicyKey]>,
    /// The request, while its outbound SA waits ([`ChildSaInstall::defer_outbound`]).
    deferred_out: Option<Box<ChildSaInstall>>,
}

/// Undo steps recorded while installing.
enum Undo {
    Sa(SaId, IpsecProto, Option<Mark>),
    Policy(PolicyKey),
}

/// A [`KernelIpsec`] over a backend. See [`super::XfrmKernel`] and [`super::MemKernel`].
#[derive(Debug)]
pub struct Ipsec<B> {
    backend: B,
    /// Boxed: a big table's free slots then cost a pointer each, not a record.
    children: HashMap<ChildId, Box<InstalledChild>>,
    /// Trap and shunt policies by reqid.
    traps: HashMap<u32, Vec<PolicyKey>>,
    /// Installed policies and their holders, by key.
    policies: HashSet<Box<Held>>,
    /// Virtual IPs we added (and so remove).
    addresses: BTreeSet<IpAddr>,
}

impl<B: XfrmBackend> Ipsec<B> {
    /// Wraps a backend; nothing is installed yet.
    pub fn with_backend(backend: B) -> Self {
        Self {
            backend,
            children: HashMap::new(),
            traps: HashMap::new(),
            policies: HashSet::new(),
            addresses: BTreeSet::new(),
        }
    }

    /// The backend (for inspection in tests).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (e.g. to inject failures into a [`super::MemBackend`]).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Installed CHILD_SAs.
    pub fn children(&self) -> impl Iterator<Item = ChildId> + '_ {
        self.children.keys().copied()
    }

    fn acquire_policy(&mut self, owner: Owner, spec: &PolicySpec) -> Result<(), KernelError> {
        let mut held = self.policies.take(&spec.key).unwrap_or_else(|| {
            Box::new(Held {
                key: spec.key,
                // Most policies have one holder: no room for more until a second one comes.
                holders: Vec::with_capacity(1),
            })
        });
        let rule = Rule::of(spec);
        let result = match held.holders.last() {
            None => self.backend.put_policy(spec, false),
            Some((_, current)) if *current != rule => self.backend.put_policy(spec, true),
            Some(_) => Ok(()),
        };
        if result.is_ok() {
            held.holders.push((owner, rule));
        }
        self.keep(held);
        result
    }

    fn release_policy(&mut self, owner: Owner, key: &PolicyKey) -> Result<(), KernelError> {
        let not_found = || KernelError::NotFound {
            target: Target::Policy(Box::new(*key)),
        };
        let mut held = self.policies.take(key).ok_or_else(not_found)?;
        let Some(pos) = held.holders.iter().rposition(|(o, _)| *o == owner) else {
            self.keep(held);
            return Err(not_found());
        };
        let was_current = pos + 1 == held.holders.len();
        let (_, removed) = held.holders.remove(pos);
        let result = match held.holders.last() {
            None => self.backend.del_policy(key),
            Some((_, next)) if was_current && *next != removed => {
                self.backend.put_policy(&next.spec(*key), true)
            }
            Some(_) => Ok(()),
        };
        let result = match result {
            Err(e) if !e.is_not_found() => {
                held.holders.insert(pos, (owner, removed));
                Err(e)
            }
            other => gone_is_fine(other),
        };
        self.keep(held);
        result
    }

    /// Puts a policy taken from the table back, unless nobody holds it any more.
    fn keep(&mut self, held: Box<Held>) {
        if !held.holders.is_empty() {
            self.policies.insert(held);
        }
    }

    fn add_policies(
        &mut self,
        owner: Owner,
        specs: &[PolicySpec],
        undo: &mut Vec<Undo>,
    ) -> Result<(), KernelError> {
        for spec in specs {
            self.acquire_policy(owner, spec)?;
            undo.push(Undo::Policy(spec.key));
        }
        Ok(())
    }

    /// Undoes `undo` in reverse order and returns the error to report for `cause`.
    fn roll_back(&mut self, owner: Owner, undo: Vec<Undo>, cause: KernelError) -> KernelError {
        let mut failures = Vec::new();
        for step in undo.into_iter().rev() {
            let r = match step {
                Undo::Sa(id, proto, mark) => gone_is_fine(self.backend.del_sa(id, proto, mark)),
                Undo::Policy(key) => self.release_policy(owner, &key),
            };
            if let Err(e) = r {
                failures.push(e);
            }
        }
        if failures.is_empty() {
            cause
        } else {
            KernelError::Rollback {
                cause: Box::new(cause),
                failures,
            }
        }
    }

    /// Installs the policies of a trap or shunt, all or nothing.
    fn install_policy_set(&mut self, reqid: u32, specs: &[PolicySpec]) -> Result<(), KernelError> {
        if self.traps.contains_key(&reqid) {
            return Err(KernelError::Exists {
                target: Target::Trap(reqid),
            });
        }
        let owner = Owner::Trap(reqid);
        let mut undo = Vec::new();
        if let Err(cause) = self.add_policies(owner, specs, &mut undo) {
            return Err(self.roll_back(owner, undo, cause));
        }
        self.traps
            .insert(reqid, specs.iter().map(|s| s.key).collect());
        Ok(())
    }

    fn install_sas(
        &mut self,
        sa_in: &SaSpec<'_>,
        sa_out: Option<&SaSpec<'_>>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), KernelError> {
        self.backend.add_sa(sa_in)?;
        undo.push(Undo::Sa(sa_in.id, sa_in.crypto.proto(), sa_in.mark));
        if let Some(sa_out) = sa_out {
            self.backend.add_sa(sa_out)?;
            undo.push(Undo::Sa(sa_out.id, sa_out.crypto.proto(), sa_out.mark));
        }
        Ok(())
    }
}

/// Removing something already gone (e.g. an SA the kernel deleted at its hard lifetime)
/// reaches the goal: logged, not an error.
fn gone_is_fine(r: Result<(), KernelError>) -> Result<(), KernelError> {
    match r {
        Err(e) if e.is_not_found() => {
            tracing::debug!("{e} (already removed)");
            Ok(())
        }
        other => other,
    }
}

impl<B: XfrmBackend + Default> Ipsec<B> {
    /// Over a backend with nothing installed (the in-memory and `--kernel none` kernels).
    pub fn new() -> Self {
        Self::with_backend(B::default())
    }
}

impl<B: XfrmBackend + Default> Default for Ipsec<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: XfrmBackend> KernelIpsec for Ipsec<B> {
    fn install_child(&mut self, child: &ChildSaInstall) -> Result<ChildId, KernelError> {
        let id = ChildId {
            reqid: child.policy.reqid,
            spi_in: child.spi_in,
            spi_out: child.spi_out,
        };
        if self.children.contains_key(&id) {
            return Err(KernelError::Exists {
                target: Target::Child(id),
            });
        }
        let (sa_in, sa_out) = child.sa_specs()?;
        let specs = policy_specs(&child.policy)?;
        let owner = Owner::Child(id);
        let mut undo = Vec::new();
        let result = self
            .install_sas(
                &sa_in,
                (!child.defer_outbound).then_some(&sa_out),
                &mut undo,
            )
            .and_then(|()| self.add_policies(owner, &specs, &mut undo));
        if let Err(cause) = result {
            return Err(self.roll_back(owner, undo, cause));
        }
        self.children.insert(
            id,
            Box::new(InstalledChild {
                sa_in: (sa_in.id, sa_in.mark),
                sa_out: (sa_out.id, sa_out.mark),
                proto: child.policy.proto,
                policies: specs.iter().map(|s| s.key).collect(),
                deferred_out: child.defer_outbound.then(|| Box::new(child.clone())),
            }),
        );
        Ok(id)
    }

    fn activate_outbound(&mut self, id: ChildId) -> Result<(), KernelError> {
        let child = self.children.get_mut(&id).ok_or(KernelError::NotFound {
            target: Target::Child(id),
        })?;
        let Some(request) = child.deferred_out.take() else {
            return Ok(());
        };
        let (_, sa_out) = request.sa_specs()?;
        let result = self.backend.add_sa(&sa_out);
        if result.is_err()
            && let Some(child) = self.children.get_mut(&id)
        {
            child.deferred_out = Some(request);
        }
        result
    }

    fn remove_child(&mut self, id: ChildId) -> Result<(), KernelError> {
        let child = self.children.remove(&id).ok_or(KernelError::NotFound {
            target: Target::Child(id),
        })?;
        let owner = Owner::Child(id);
        let mut errors = Vec::new();
        for key in child.policies.iter().rev() {
            if let Err(e) = self.release_policy(owner, key) {
                errors.push(e);
            }
        }
        let out = child.deferred_out.is_none().then_some(child.sa_out);
        for (sa, mark) in out.into_iter().chain([child.sa_in]) {
            if let Err(e) = gone_is_fine(self.backend.del_sa(sa, child.proto, mark)) {
                errors.push(e);
            }
        }
        KernelError::collect(Target::Child(id), errors)
    }

    fn child_counters(&mut self, id: ChildId) -> Result<ChildCounters, KernelError> {
        let child = self.children.get(&id).ok_or(KernelError::NotFound {
            target: Target::Child(id),
        })?;
        let (sa_in, sa_out, proto) = (child.sa_in, child.sa_out, child.proto);
        let waiting = child.deferred_out.is_some();
        Ok(ChildCounters {
            inbound: self.backend.sa_counters(sa_in.0, proto, sa_in.1)?,
            outbound: if waiting {
                Counters::default()
            } else {
                self.backend.sa_counters(sa_out.0, proto, sa_out.1)?
            },
        })
    }

    fn install_trap(&mut self, trap: &ChildPolicy) -> Result<(), KernelError> {
        let specs = policy_specs(trap)?;
        self.install_policy_set(trap.reqid, &specs)
    }

    fn install_shunt(&mut self, shunt: &ShuntPolicy) -> Result<(), KernelError> {
        let specs = shunt_specs(shunt)?;
        self.install_policy_set(shunt.reqid, &specs)
    }

    fn remove_trap(&mut self, reqid: u32) -> Result<(), KernelError> {
        let keys = self.traps.remove(&reqid).ok_or(KernelError::NotFound {
            target: Target::Trap(reqid),
        })?;
        let errors = keys
            .iter()
            .rev()
            .filter_map(|key| self.release_policy(Owner::Trap(reqid), key).err())
            .collect();
        KernelError::collect(Target::Trap(reqid), errors)
    }

    fn flush_ours(&mut self) -> Result<FlushReport, KernelError> {
        // Our virtual IPs go too (best effort: one already gone is fine).
        for addr in std::mem::take(&mut self.addresses) {
            let _ = gone_is_fine(self.backend.del_address(addr));
        }
        let report = self.backend.flush_ours()?;
        self.children.clear();
        self.traps.clear();
        self.policies.clear();
        Ok(report)
    }

    fn add_virtual_ip(&mut self, addr: IpAddr) -> Result<(), KernelError> {
        match self.backend.add_address(addr) {
            Ok(()) => {
                self.addresses.insert(addr);
                Ok(())
            }
            Err(KernelError::Exists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn remove_virtual_ip(&mut self, addr: IpAddr) -> Result<(), KernelError> {
        if self.addresses.remove(&addr) {
            gone_is_fine(self.backend.del_address(addr))
        } else {
            Ok(())
        }
    }
}
