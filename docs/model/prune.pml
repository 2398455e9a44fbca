/*
 * The prune and lease protocol of docs/format.md §9, as Promela for spin. Run docs/model/check.sh.
 *
 * One backup writer W and two prunes P1, P2 against one repository with two packs:
 *   X  the pack of a forgotten snapshot: listed by the first index file, used by nobody, a
 *      candidate; W deduplicates against it if it still finds it in the index,
 *   Y  the pack W writes itself when it does not.
 * Every interleaving of their steps is explored, so any process may stall at any point for any
 * length of time. On top of that:
 *   - time is not modelled at all: a prune may find any lease expired at any moment (clock skew,
 *     a suspended host, failed renewals), and so revoke it (or, for a prune's lease, not);
 *   - any process may crash at any moment (its lease stays);
 *   - W's heartbeat checks its lease and writes it back later (a stalled renewal may resurrect it);
 *   - the user may forget W's snapshot once W has reported it (spin -DNO_FORGET leaves this out:
 *     a smaller state space that an exhaustive search completes).
 * A prune's sweep that finds a snapshot made since its mark loads the index files as they are then
 * (its compaction replaces them too) and looks up the packs they list; a prune with nothing to
 * delete still merges the index files when there are more than one. Compaction always writes a
 * file (maybe empty), which is what makes the next prune merge files that a revoked prune is yet
 * to delete.
 *
 * Without that look-up (the merged index then left out a new snapshot's packs: found by the
 * torture tests) the search reports snapshots_indexed violated.
 * Storage operations are atomic (one put, delete or listing each); a listing or an index load
 * sees the objects present at that moment.
 *
 * Properties, asserted by Monitor in every reachable state:
 *   reported_whole   a snapshot W reported as complete never references a deleted pack;
 *   snapshots_whole  no snapshot references a deleted pack, but while a write has landed and its
 *                    writer has not yet confirmed its lease after it (`unconfirmed`): the writer
 *                    takes such a write back when its lease fell meanwhile, or dies (the residual
 *                    case of docs/format.md §9);
 *   index_whole      likewise, no index file lists a deleted pack; nor after `lateDelete`: a prune
 *                    revoked while it stalled between its last confirmation and its deletes
 *                    deletes late, and an index file that resurrected the pack for a snapshot
 *                    whose write was not confirmed may outlive the pack (residual, §9);
 *   snapshots_indexed  every pack a snapshot references is listed by an index file or a plan
 *                    (readers and prune locate its blobs), with the same `unconfirmed` exception;
 *                    nor after `takenBack`: an index file or plan that landed before its writer's
 *                    lease was revoked, and was read by the revoking prune, is taken back all the
 *                    same (residual, §9: the pack stays, `repair index` indexes it again).
 */

#define X 1
#define Y 2
/* lease IDs */
#define LW 0
#define LP1 1
#define LP2 2
#define NFILES 7
#define NPLANS 5

byte packs = X;                 /* packs that exist */
byte file[NFILES];              /* the packs each index file lists */
bit filePresent[NFILES];
byte nfiles = 1;
bit snapPresent = 0;            /* W's snapshot */
byte snapRefs = 0;
bit reported = 0;               /* W said its snapshot is complete */
bit planPresent[NPLANS];
bit planDone[NPLANS];           /* completed, not a draft */
byte planPacks[NPLANS];         /* candidates */
byte planEntries[NPLANS];       /* candidates that were indexed (their entries are in the plan) */
byte planLeases[NPLANS];        /* bit per lease: the leases standing at completion */
byte nplans = 0;
bit lease[3];                   /* lease objects */
bit revoked[3];                 /* revocation markers */
bit crash[3];                   /* set by Crasher: the process stops where it is */
bit ended[3];
byte unconfirmed = 0;           /* ghost: writes landed whose writer has not confirmed its lease since */
bit lateDelete = 0;             /* ghost: a prune deleted a pack after its lease had been revoked */
bit takenBack = 0;              /* ghost: a guarded index file or plan was taken back (it landed, then its lease fell) */

#define danglingSnap (snapPresent && (snapRefs & ~packs) != 0)
#define plannedEntries ((planPresent[0] * planEntries[0]) | (planPresent[1] * planEntries[1]) \
  | (planPresent[2] * planEntries[2]) | (planPresent[3] * planEntries[3]) | (planPresent[4] * planEntries[4]))
#define indexedPacks ((filePresent[0] * file[0]) | (filePresent[1] * file[1]) | (filePresent[2] * file[2]) \
  | (filePresent[3] * file[3]) | (filePresent[4] * file[4]) | (filePresent[5] * file[5]) \
  | (filePresent[6] * file[6]))
#define unlocatable (snapPresent && (snapRefs & ~(indexedPacks | plannedEntries)) != 0)
#define danglingIndex ((filePresent[0] && (file[0] & ~packs)) || (filePresent[1] && (file[1] & ~packs)) \
  || (filePresent[2] && (file[2] & ~packs)) || (filePresent[3] && (file[3] & ~packs)) \
  || (filePresent[4] && (file[4] & ~packs)) || (filePresent[5] && (file[5] & ~packs)) \
  || (filePresent[6] && (file[6] & ~packs)))

/* The four properties, checked in every reachable state (the monitor can step in any of them). */
active proctype Monitor() {
end:
  atomic {
    (reported && danglingSnap) || (danglingSnap && unconfirmed == 0) || (danglingIndex && unconfirmed == 0 && !lateDelete) || (unlocatable && unconfirmed == 0 && !takenBack) ->
    assert(!(reported && danglingSnap));   /* reported_whole */
    assert(!danglingSnap);                 /* snapshots_whole */
    assert(!danglingIndex);                /* index_whole */
    assert(!unlocatable)                   /* snapshots_indexed */
  }
}

/* Lease.confirm: the holder's lease stands (not revoked, still there), else it lapses for good. */
#define standing(me) (lease[me] && !revoked[me])

/* revokeLease: the marker first, then the lease object. */
inline revoke(id) {
  revoked[id] = 1;
  lease[id] = 0
}

/* The union of the index files present now, and which they are (one listing). */
inline loadIndex(view, seen) {
  d_step {
    view = 0; seen = 0; j = 0;
    do
    :: j < nfiles -> if :: filePresent[j] -> view = view | file[j]; seen = seen | (1 << j) :: else fi; j++
    :: else -> break
    od;
    j = 0
  }
}

/* Lease.guard around writing index file `mask` (slot returned in `slot`); a lapse jumps to `lapsed`. */
inline guardedIndexWrite(me, mask, slot) {
  if :: !standing(me) -> goto lapsed :: else fi;
  atomic { assert(nfiles < NFILES); slot = nfiles; file[slot] = mask; filePresent[slot] = 1; nfiles++; unconfirmed++ };
  if
  :: !standing(me) -> atomic { filePresent[slot] = 0; unconfirmed--; takenBack = 1 }; goto lapsed
  :: else -> unconfirmed--
  fi
}

inline guardedPlanWrite(me, cand, entries, done, leases, slot) {
  if :: !standing(me) -> goto lapsed :: else fi;
  atomic {
    assert(nplans < NPLANS); slot = nplans; planPacks[slot] = cand; planEntries[slot] = entries;
    planDone[slot] = done; planLeases[slot] = leases; planPresent[slot] = 1; nplans++; unconfirmed++
  };
  if
  :: !standing(me) -> atomic { planPresent[slot] = 0; unconfirmed--; takenBack = 1 }; goto lapsed
  :: else -> unconfirmed--
  fi
}

/* A prune's view of which leases are expired: any it likes (time is not modelled). */
inline maybeRevoke(id) {
  if
  :: lease[id] && !revoked[id] -> revoke(id)
  :: true -> skip
  fi
}

inline standingLeases(me, out) {
  d_step {
    out = 0;
    if :: standing(LW) -> out = out | (1 << LW) :: else fi;
    if :: standing(LP1) -> out = out | (1 << LP1) :: else fi;
    if :: standing(LP2) -> out = out | (1 << LP2) :: else fi;
    out = out & ~(1 << me)
  }
}

/*
 * sweepPlans: the plans in `plansMask` (read when listed; plan slots are never reused). `before`:
 * the packs an index listing made before this sweep's lease listing showed (a pack some index
 * lists then or at the later listing is not deleted).
 */
inline sweep(me, plansMask, before, used, present) {
  bef = before;
  maybeRevoke(LW);
  maybeRevoke(other);
  standingLeases(me, standingMask);
  if
  :: snapPresent && !snapMarked ->
     /* a snapshot written since: the index files as they are now are loaded too (and replaced
        by this prune's compaction), and the packs they list looked up (`present`) */
     loadIndex(late, lateSeen);
     view = view | late; seen = seen | lateSeen;
     present = present | (late & packs);
     used = used | snapRefs; snapMarked = 1
  :: else
  fi;
  d_step {
    sweepable = 0; held = 0; k = 0;
    do
    :: k < NPLANS ->
       if
       :: plansMask & (1 << k) ->
          if
          :: (planDone[k] && (planLeases[k] & standingMask) != 0) || (!planDone[k] && standingMask != 0) -> held = held | planPacks[k]
          :: else -> sweepable = sweepable | (1 << k)
          fi
       :: else
       fi;
       k++
    :: else -> break
    od;
    k = 0
  };
  if
  :: sweepable != 0 ->
     loadIndex(live, seen2);
     d_step {
       res = 0; doomed = 0;
       do
       :: k < NPLANS ->
          if
          :: sweepable & (1 << k) ->
             /* a draft's prune may delete the index files it replaced late (revoked while stalled): live is not relied on */
             res = res | (planEntries[k] & used & present & (planDone[k] -> ~live : 255)); doomed = doomed | planPacks[k]
          :: else
          fi;
          k++
       :: else -> break
       od;
       k = 0;
       doomed = doomed & ~res & ~live & ~bef & ~held
     };
     if
     :: res != 0 ->
        guardedIndexWrite(me, res, slot);
        /* the resurrected packs are looked at again: one deleted meanwhile (by a prune revoked while stalled) is not indexed */
        if :: (file[slot] & ~packs) != 0 -> filePresent[slot] = 0 :: else fi
     :: else
     fi;
     if :: !standing(me) -> goto lapsed :: else fi;
     atomic { lateDelete = lateDelete || (!standing(me) && (packs & doomed) != 0); packs = packs & ~doomed };
     present = present & ~doomed;
     d_step {
       do
       :: k < NPLANS -> if :: sweepable & (1 << k) -> planPresent[k] = 0 :: else fi; k++
       :: else -> break
       od;
       k = 0
     }
  :: else
  fi
}

/* The index files a prune loaded are deleted once its compacted ones are written. */
inline deleteSeen(seen) {
  d_step {   /* one delete per file in the code, one step here (an abstraction) */
    k = 0;
    do
    :: k < NFILES -> if :: seen & (1 << k) -> filePresent[k] = 0 :: else fi; k++
    :: else -> break
    od;
    k = 0
  }
}

proctype Writer() {
  byte view, seen, refs, slot, j;
  {
    lease[LW] = 1;
    loadIndex(view, seen);
    if
    :: view & X -> refs = X              /* deduplicates against X */
    :: else ->
       packs = packs | Y;                /* stores its own copy */
       guardedIndexWrite(LW, Y, slot);
       refs = Y
    fi;
    if :: !standing(LW) -> goto lapsed :: else fi;
    atomic { snapPresent = 1; snapRefs = refs; unconfirmed++ };
    if
    :: !standing(LW) -> atomic { snapPresent = 0; unconfirmed-- }; goto lapsed
    :: else -> unconfirmed--
    fi;
    reported = 1;
    lease[LW] = 0;
    goto done;
lapsed:
    skip;                                /* exits 11; its lease is the prune's to clean up */
done:
    ended[LW] = 1
  } unless { crash[LW] }
}

/* The heartbeat: confirms, then (maybe much later) rewrites the lease. */
proctype Heartbeat() {
  do
  :: !ended[LW] && !crash[LW] && standing(LW) -> lease[LW] = 1
  :: ended[LW] || crash[LW] -> break
  od
}

proctype Prune(byte me; byte other) {
  byte plansSeen, inPlans, standingMask, used, view, seen, present, cand, draft, done2, slot, k, j;
  byte sweepable, held, live, seen2, res, doomed, bef, late, lateSeen;
  bit snapMarked;
  {
    lease[me] = 1;
    /* Lease.acquireExclusive: own lease written, then the other's looked at */
    if
    :: lease[other] && !revoked[other] ->
       if
       :: goto busy                      /* live: refuse */
       :: revoke(other)                  /* expired */
       fi
    :: else
    fi;
    d_step {
      plansSeen = 0; inPlans = 0; k = 0;
      do
      :: k < NPLANS -> if :: planPresent[k] -> plansSeen = plansSeen | (1 << k); inPlans = inPlans | planPacks[k] :: else fi; k++
      :: else -> break
      od;
      k = 0
    };
    atomic { used = (snapPresent -> snapRefs : 0); snapMarked = snapPresent };
    loadIndex(view, seen);
    present = packs;
    sweep(me, plansSeen, view, used, present);
    /* phase 1: unindexed packs and indexed unused ones, not already planned */
    cand = present & ~inPlans & ~(view & used);
    if
    :: cand == 0 ->
       /* nothing to delete: the index files are merged when there are more than one */
       if
       :: (seen & (seen - 1)) == 0 -> goto release
       :: else ->
          guardedIndexWrite(me, view & present, slot);
          if :: !standing(me) -> goto lapsed :: else fi;
          deleteSeen(seen);
          goto release
       fi
    :: else
    fi;
    guardedPlanWrite(me, cand, cand & view, 0, 0, draft);
    guardedIndexWrite(me, view & present & ~cand, slot);
    if :: !standing(me) -> goto lapsed :: else fi;
    deleteSeen(seen);
    maybeRevoke(LW);
    maybeRevoke(other);
    standingLeases(me, standingMask);
    guardedPlanWrite(me, cand, cand & view, 1, standingMask, done2);
    if :: !standing(me) -> goto lapsed :: else fi;
    planPresent[draft] = 0;
    sweep(me, 1 << done2, 0, used, present);
release:
    lease[me] = 0;
    goto finish;
busy:
    lease[me] = 0;
    goto finish;
lapsed:
    skip;
finish:
    ended[me] = 1
  } unless { crash[me] }
}

/* At most one crash, of anyone, at any moment. */
proctype Crasher() {
  if
  :: crash[LW] = 1
  :: crash[LP1] = 1
  :: crash[LP2] = 1
  :: true -> skip
  fi
}

/* The user forgets W's snapshot once W has reported it. */
proctype Forget() {
  if
  :: reported && snapPresent -> snapPresent = 0
  :: true -> skip
  fi
}

init {
  file[0] = X;
  filePresent[0] = 1;
  atomic {
    run Writer();
    run Heartbeat();
    run Prune(LP1, LP2);
    run Prune(LP2, LP1);
    run Crasher()
#ifndef NO_FORGET
    ; run Forget()
#endif
  }
}
