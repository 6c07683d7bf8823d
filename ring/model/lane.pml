/*
 * lane.pml -- Promela model of ONE ckring lane (ring/PROTOCOL.md).
 * MAPPING.md maps every step to PROTOCOL.md and to the C function.
 *
 * Actors: 2 producer threads of ONE owner process A (token 1); the
 * consumer (the flusher); the store (LMDB); a killer that may SIGKILL
 * the owner process at any step (all of its threads stop at once).  The
 * consumer may be SIGKILLed and restarts through R1-R2 with its private
 * state lost.  With -DSUCCESSOR, a second process B (token 2, one thread)
 * attaches once the lane is free again (after C7), pushes, and detaches;
 * it may be SIGKILLed too.
 *
 * Granularity: every numbered protocol step is at most one atomic step of
 * the model; a CAS is one step; plain stores of different shared words are
 * separate steps.  Work on private variables is merged into a neighbouring
 * step (that changes no behaviour: nobody else can see it).
 *
 * Units: a position is counted in SLOTS (a slot stands for one 8-byte
 * word); a record is 1..MAXLEN slots; a PAD fills to the lane end.
 * Positions only grow; index = p % CAP, lap = p / CAP.  Nothing is ever
 * zeroed, so stale seals of earlier laps stay in the ring.
 *
 * Record layout in the model: the first slot of a record at index i has
 *   seal[i]   the seal word (lap, len, state)
 *   plen[i]   the payload_len word; the check "len == align8(16 +
 *             payload_len)" is plen[i] == len.  It is written at P7, so a
 *             BUSY seal is valid only if the stale plen of an earlier
 *             record happens to match (both cases are explored).
 *   did[i]    the payload: the record id.
 * The other slots of a multi-slot record are payload; a payload word is
 * never taken for a valid seal (a coincidental or hostile one is the
 * "Known limit" of PROTOCOL.md).  Their stale seal words of earlier laps
 * are kept instead: those are never valid for a later position.
 * The crc is not modelled: the copy of C3 is one atomic step after the
 * acquire of C2, so there are no torn reads, and a crc check could only
 * fail where I3 (no overwrite) already fails; a quarantined record is not
 * persisted, so it would show up as a loss (I1) anyway.
 *
 * Record ids are assigned (ghost) at the successful claim CAS (P4): id n is
 * the n-th claim of the lane.  So ids are unique and "persisted order
 * equals claim order" (I4) reads "persisted ids strictly increase".
 *
 * Build options (-D..., given to spin, which runs cpp on this file):
 *   CAP=n MAXLEN=n  ring slots, largest record in slots
 *   K0=n K1=n K2=n  records pushed by A's thread 0, A's thread 1, B
 *   MAXCK=n         consumer kills
 *   NO_OWNER_KILL   the owner processes are never killed
 *   SUCCESSOR       add process B (see above)
 *   KILL_ANYWHERE   the consumer may be killed before ANY of its steps
 *                   (default: right after each of its shared writes; see
 *                   MAPPING.md for why that loses no behaviour)
 *   LIVENESS        add the LTL property L1 (pan -a -f)
 *   PROTOCOL_AS_WRITTEN           C4 acts on the seal read at C2, as
 *                                 PROTOCOL.md words it (finding F1); the
 *                                 same as BROKEN_C4_STALE_SEAL
 *   BROKEN_RELEASE_BEFORE_COMMIT  C6 stores head before the store commit
 *   BROKEN_SKIP_LIVE              C4 skips a BUSY claim of a live owner
 *   BROKEN_NO_LAP                 seal validity ignores the lap
 *   BROKEN_WAIT_DEAD              C4 never reclaims (L1 must fail)
 */

#ifndef CAP
#define CAP 4
#endif
#ifndef MAXLEN
#define MAXLEN 2
#endif
#ifndef K0
#define K0 2
#endif
#ifndef K1
#define K1 1
#endif
#ifndef MAXCK
#define MAXCK 1
#endif
#ifdef SUCCESSOR
#ifndef K2
#define K2 1
#endif
#define NPROD 3
#else
#define K2 0
#define NPROD 2
#endif
#define NREC (K0 + K1 + K2)
#define QUOTA(pid) (pid == 0 -> K0 : (pid == 1 -> K1 : K2))
#define TOKEN(pid) (pid < 2 -> 1 : 2)
#ifdef NO_OWNER_KILL
#define OWNER_KILLABLE false
#else
#define OWNER_KILLABLE true
#endif

/* seal word: lap[3 bits] << 5 | len[3 bits] << 2 | state[2 bits] */
#define ST_NONE 0
#define ST_BUSY 1
#define ST_DATA 2
#define ST_PAD  3
#define SEAL(lap, len, st) (((lap) << 5) | ((len) << 2) | (st))
#define S_LAP(w) ((w) >> 5)
#define S_LEN(w) (((w) >> 2) & 7)
#define S_ST(w)  ((w) & 3)
#define IDX(p) ((p) % CAP)
#define LAP(p) ((p) / CAP)

/* classification of a seal w read at position p, with the payload_len
 * word pl of the same record */
#define V_NONE 0        /* not valid for p */
#define V_BUSY 1
#define V_DATA 2
#define V_PAD  3
#define V_NEXT 4        /* (consumer-internal: consumed, go on at C2) */

#ifdef BROKEN_NO_LAP
#define LAPOK(w, p) true
#else
#define LAPOK(w, p) (S_LAP(w) == LAP(p))
#endif

inline classify(w, p, pl, out)
{
  if
  :: S_ST(w) == ST_PAD && LAPOK(w, p) && S_LEN(w) > 0 &&
     IDX(p) + S_LEN(w) == CAP -> out = V_PAD
  :: (S_ST(w) == ST_BUSY || S_ST(w) == ST_DATA) && LAPOK(w, p) &&
     S_LEN(w) > 0 && IDX(p) + S_LEN(w) <= CAP && S_LEN(w) == pl ->
     out = S_ST(w)
  :: else -> out = V_NONE
  fi
}

/* ---------------- shared memory of the lane ------------------------- */
byte tail;              /* end of all claims (producers, CAS)            */
byte head;              /* consumer; only after the store commit         */
byte head_cache;        /* producers; a stale copy of head               */
byte owner_word = 1;    /* token of the owner process; 0 = free          */
byte seal[CAP];         /* seal word at each index                       */
byte plen[CAP];         /* payload_len word at each index                */
byte did[CAP];          /* payload (record id) at each index             */

/* ---------------- processes ------------------------------------------ */
bool alive[3] = true;   /* alive[tok]: the process of token tok is alive */
byte ckills;            /* consumer kills so far (<= MAXCK)              */
#ifdef KILL_ANYWHERE
bool kill_req;          /* SIGKILL pending for the consumer              */
#endif
#define OWNER_DEAD (owner_word != 0 && !alive[owner_word])

/* ---------------- the store (LMDB) -----------------------------------
 * Changed only by C6's commit, in one atomic step (= one transaction).
 * The list of persisted ids is kept as a set plus the last id: the order
 * is checked at each commit (I4), so the list is the set in id order.  */
byte store_pos;         /* persisted position of the lane                */
bool pers[NREC + 1];    /* persisted ids                                 */
byte last_pid;          /* the last persisted id                         */

/* ---------------- ghosts (checking only) ----------------------------- */
bool acked[NREC + 1];   /* push returned OK (P8 completed)               */
byte nclaim;            /* successful claims so far                      */
byte pdone = (K0 == 0) + (K1 == 0);  /* A's threads done with all pushes */
bool bdone;             /* B pushed all and detached                     */
bool cdone;             /* consumer drained the lane to its end          */
#ifdef SUCCESSOR
byte ctok[CAP];         /* token of the claimer of each slot             */
#define CLAIM_DEAD(x) (!alive[ctok[IDX(x)]])
#else
#define CLAIM_DEAD(x) (!alive[1])
#endif

/* I3: a producer writing the slots below position e overwrites positions
 * x - CAP (same index, earlier lap); they must be persisted already:
 * x - CAP < store_pos for every x < e. */
#define I3(e) assert((e) <= store_pos + CAP)

/* ==================================================================== */
active [NPROD] proctype Producer()
{
  byte k, id, need, pad, t, h;

  {
#ifdef SUCCESSOR
    if
    :: TOKEN(_pid) == 2 ->
end_attach:
       atomic { owner_word == 0 -> owner_word = 2 }      /* attach: CAS */
    :: else -> skip
    fi;
#endif
    do
    :: k < QUOTA(_pid) ->
       if                              /* the record: 1..MAXLEN slots  */
       :: need = 1
#if MAXLEN >= 2
       :: need = 2
#endif
#if MAXLEN >= 3
       :: need = 3
#endif
       fi;
P1:    t = tail;                                        /* P1 relaxed */
       pad = (IDX(t) + need > CAP -> CAP - IDX(t) : 0); /* P2         */
P3:    if                                               /* P3         */
       :: t + pad + need - head_cache > CAP ->
          h = head;                          /* acquire, pairs with C6 */
          head_cache = h;
          if
          :: t + pad + need - h > CAP ->     /* refused_full: -EAGAIN  */
#ifdef W_FULL
             assert(false);
#endif
             h = 0; goto P1                  /* the caller retries     */
          :: else -> h = 0
          fi
       :: else -> skip
       fi;
P4:    atomic {                                         /* P4: CAS    */
         if
         :: tail == t ->
            tail = t + pad + need;
            nclaim++; id = nclaim;            /* ghost: id = claim order */
#ifdef SUCCESSOR
            h = t;
            do
            :: h < tail -> ctok[IDX(h)] = TOKEN(_pid); h++
            :: else -> h = 0; break
            od
#endif
         :: else -> goto P1
         fi
       };
       /* ---- the claim [t, t+pad+need) is ours; we may die from here on */
P5:    if                                               /* P5         */
       :: pad > 0 ->
          d_step {
            I3(t + pad);
            seal[IDX(t)] = SEAL(LAP(t), pad, ST_PAD);
            t = t + pad; pad = 0
          }
       :: else -> skip
       fi;
P6:    d_step {                                         /* P6         */
         I3(t + need);
         seal[IDX(t)] = SEAL(LAP(t), need, ST_BUSY)
       };
P7:    d_step {                                         /* P7         */
         I3(t + need);
         plen[IDX(t)] = need; did[IDX(t)] = id
       };
P8:    d_step {                                         /* P8 release */
         I3(t + need);
         seal[IDX(t)] = SEAL(LAP(t), need, ST_DATA);
         acked[id] = true;                    /* ghost: push returned OK */
         k++; t = 0; need = 0; id = 0;
         if
         :: k == QUOTA(_pid) && TOKEN(_pid) == 1 -> pdone++
         :: else -> skip
         fi
       }
    :: else -> break
    od;
#ifdef SUCCESSOR
    if
    :: TOKEN(_pid) == 2 ->
       atomic { owner_word = 0; bdone = true }   /* clean detach: store */
    :: else -> skip
    fi
#endif
  } unless { !alive[TOKEN(_pid)] }   /* SIGKILL: all threads stop at once */
}

/* the consumer may be SIGKILLed here (bounded by MAXCK) */
#ifdef KILL_ANYWHERE
#define CKILL skip
#else
#define CKILL if \
              :: ckills < MAXCK -> ckills++; goto restart \
              :: true -> skip \
              fi
#endif

/* the end of the model: the owners' threads are all finished or dead and
 * the lane is drained (and persisted) to its tail */
#ifdef SUCCESSOR
#define ALL_PRODUCED ((pdone == 2 || !alive[1]) && \
                      (alive[1] || bdone || !alive[2]))
#else
#define ALL_PRODUCED (pdone == 2 || !alive[1])
#endif

/* ==================================================================== */
active proctype Consumer()
{
  byte r, w, vk, tl, q, nb, i;
  byte batch[NREC];
  bool rr;              /* w was read after the owner was seen dead */

restart:
  /* R1: claim flusher_owner (the model has one consumer: it succeeds).
   * The private state of the killed consumer is gone.                  */
  atomic {
    r = 0; w = 0; vk = 0; tl = 0; q = 0; nb = 0; i = 0; rr = false;
    do
    :: i < NREC -> batch[i] = 0; i++
    :: else -> break
    od;
    i = 0
  };
  /* R2: head = the persisted position (never behind head); then C1 */
R2: d_step {
    assert(store_pos >= head);
#ifdef W_LAG
    assert(store_pos == head);
#endif
    head = store_pos;
    r = head                            /* C1: r = head (its own word) */
  };

  {
       /* one pass over the lane: C2..C5 */
C2:    do
       :: w = seal[IDX(r)];                             /* C2 acquire */
          /* C3: the validity check (loads payload_len); a valid DATA
           * record is copied out in the same step (its crc is good),
           * a valid PAD stepped over */
C3:       d_step {
            classify(w, r, plen[IDX(r)], vk);
#ifdef W_STALE
            assert(!(S_ST(w) != ST_NONE && S_LAP(w) < LAP(r)));
#endif
#ifdef W_PAD
            assert(vk != V_PAD);
#endif
            if
            :: vk == V_DATA && nb < NREC ->
               batch[nb] = did[IDX(r)]; nb++;
               r = r + S_LEN(w); w = 0; vk = V_NEXT; rr = false
            :: vk == V_PAD ->
               r = r + S_LEN(w); w = 0; vk = V_NEXT; rr = false
            :: else -> skip
            fi
          };
          if
          :: vk == V_NEXT -> vk = 0                     /* goto C2    */
          :: vk == V_DATA -> break                      /* batch full */
          :: vk == V_BUSY || vk == V_NONE ->
C4tail:      tl = tail;
             if
             :: vk == V_BUSY || r < tl ->
                /* C4: a BUSY claim, or a claim not yet sealed */
                if
                :: !OWNER_DEAD ->                       /* C4 liveness */
#ifdef BROKEN_SKIP_LIVE
                   if
                   :: vk == V_BUSY -> goto skipbusy
                   :: else -> skip
                   fi;
#endif
                   break                 /* alive, or lane free: stop  */
                :: OWNER_DEAD -> skip
                fi;
#ifdef BROKEN_WAIT_DEAD
                break;
#endif
#if !defined(PROTOCOL_AS_WRITTEN) && !defined(BROKEN_C4_STALE_SEAL)
                /* F1 fix: w may have been read before the owner died;
                 * read the seal again (C2) now that no writer can exist,
                 * and act on that value only */
                if
                :: !rr -> rr = true; w = 0; vk = 0; tl = 0; goto C2
                :: else -> skip
                fi;
#endif
                if
                :: vk == V_BUSY ->
skipbusy:          atomic {               /* C4: reclaim a BUSY claim */
#ifdef W_BUSYSKIP
                     assert(false);
#endif
                     assert(CLAIM_DEAD(r));                      /* I5 */
                     /* the claim skipped was not acked (I1) */
                     assert(seal[IDX(r)] != SEAL(LAP(r), S_LEN(w), ST_DATA));
                     r = r + S_LEN(w); w = 0; vk = 0; tl = 0; rr = false
                   }
                :: else ->
                   /* C4: scan for the first q < tail with a valid seal */
                   q = r;
                   do
                   :: q < tl ->
C4scan:               d_step { w = seal[IDX(q)];
                               classify(w, q, plen[IDX(q)], vk);
                               w = 0 };
                      if
                      :: vk != V_NONE -> vk = 0; break
                      :: else -> q++
                      fi
                   :: else -> break
                   od;
                   atomic {                /* skip [r, q): reclaimed   */
#ifdef W_SCAN
                     assert(q == r);
#endif
                     do                                          /* I5 */
                     :: r < q -> assert(CLAIM_DEAD(r)); r++
                     :: else -> break
                     od;
                     q = 0; tl = 0; rr = false
                   }
                fi
             :: else -> break                   /* C5: r == tail: empty */
             fi
          fi
       od;
       /* C6: ONE store transaction with the batch and (lane, r); then
        * head = r */
#ifdef BROKEN_RELEASE_BEFORE_COMMIT
C6head0: atomic { assert(r >= head); head = r };
       CKILL;
#endif
C6commit:
       atomic {
         i = 0;
         do
         :: i < nb ->
            assert(acked[batch[i]]);        /* only acked records persist */
            assert(!pers[batch[i]]);        /* I2: never persisted twice  */
            assert(batch[i] > last_pid);    /* I4: in claim order         */
            pers[batch[i]] = true; last_pid = batch[i];
            batch[i] = 0; i++
         :: else -> break
         od;
         assert(r >= store_pos);
         store_pos = r; nb = 0; i = 0; w = 0; vk = 0; tl = 0; rr = false
       };
       CKILL;
#ifndef BROKEN_RELEASE_BEFORE_COMMIT
C6head: d_step { assert(r >= head); head = r };         /* release    */
       CKILL;
#endif
       /* C7: owner dead and drained to its tail: CAS owner token -> 0.
        * Same step, ghost: the end of the model (ALL_PRODUCED, r == tail);
        * else C1 of the next pass (r = head) */
C7:    atomic {
         if
         :: OWNER_DEAD && r == tail -> owner_word = 0
         :: else -> skip
         fi;
         if
         :: ALL_PRODUCED && r == tail -> cdone = true
         :: else -> skip
         fi
       };
       if
       :: cdone -> skip
       :: else ->
          CKILL;
          r = head; goto C2                                     /* C1 */
       fi
  }
#ifdef KILL_ANYWHERE
  unless { atomic { kill_req -> kill_req = false } };
  if
  :: !cdone -> goto restart
  :: else -> skip
  fi
#endif
  ;
  /* I1: every acked record is persisted (exactly once: I2) */
  d_step {
    i = 1;
    do
    :: i <= NREC -> assert(!acked[i] || pers[i]); i++
    :: else -> break
    od;
#ifdef W_DONE_ALL
    /* witness: a run in which every record was acked reaches the end */
    i = 1;
    do
    :: i <= NREC && acked[i] -> i++
    :: i <= NREC && !acked[i] -> break
    :: else -> assert(false)
    od;
#endif
#ifdef W_DONE_DEAD
    /* witness: a run in which the owner died holding claims reaches
     * the end (claims were reclaimed) */
    assert(!(!alive[1] && nclaim > 0 && !acked[nclaim] && ckills > 0));
#endif
    i = 0
  }
}

/* ==================================================================== */
/* SIGKILL of an owner process (and of the consumer) at any time */
active proctype Killer()
{
end:
  do
  :: atomic { OWNER_KILLABLE && alive[1] -> alive[1] = false }
#ifdef SUCCESSOR
  :: atomic { OWNER_KILLABLE && alive[2] -> alive[2] = false }
#endif
#ifdef KILL_ANYWHERE
  :: atomic { ckills < MAXCK && !kill_req && !cdone ->
              kill_req = true; ckills++ }
#endif
  od
}

#ifdef LIVENESS
/* L1: with the owner dead, the consumer always gets past the lane */
ltl L1 { [] (!alive[1] -> <> cdone) }
#endif
