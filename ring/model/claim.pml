/*
 * claim.pml -- Promela model of the run protocol of ckring: owners,
 * writers and claims (ring/PROTOCOL.md, "# Owners, writers and claims").
 * MAPPING.md ("claim.pml: the run protocol") maps every step to PROTOCOL.md and to
 * the C code, and gives the bounds, the results and the findings.
 *
 * The ring itself is abstracted: lane.pml proves that every record whose
 * push returned OK reaches the store exactly once, in lane order, and that
 * a record is never overwritten before it is persisted.  So here a lane is
 * a FIFO of complete records (event ids), a push is one atomic step (it
 * put a complete record into the lane, or nothing), and the flusher reads
 * a lane's records in order.
 *
 * Actors (each an OS process, with one owner identity = token + nonce):
 *   A  (id 1) the executor.  Attaches a lane (tenure 1); may begin run R
 *      (writer 1), push up to KA messages, finish; may detach cleanly
 *      (D1) and attach again (tenure 2 of the SAME identity, -DA_TEN2)
 *      and begin R there if it has not yet.  A run handle never spans
 *      tenures: ckr_client_detach() requires the client's run handles
 *      closed (ckring.h), so a detach closes the writer (LEAVE_RUNNING).
 *   B  (id 2, -DHAS_B) begins the SAME run id from another process
 *      (writer 2), pushes up to KB messages, may finish, may detach.
 *   C, D (ids 3, 4; -DHAS_C, -DHAS_D) recoverers: claim R (K1-K3, one
 *      atomic store transaction), attach a lane, reopen (writer = own id,
 *      incarnation from the claim, seq from next_seq), push up to KC/KD
 *      messages, may finish, may detach.
 *   the Killer: SIGKILL of any of them at any time (all threads stop,
 *      the kernel drops its OFD locks at once, /proc says dead); with
 *      -DA_EXEC, A may exec instead (locks dropped, image and identity
 *      gone, /proc still says alive: same pid, same start time).
 *   the Flusher: passes over lanes (any lanes, any order, in-lane order
 *      kept), one store transaction per batch (atomic): the acceptance
 *      rule, cursors, ended marks, rejection rows; then W2, head, C7;
 *      G / E1; E2 housekeeping.  It may be SIGKILLed and restarts with
 *      its private state lost (W4, R2).
 * Each process is a loop of actions; every action is ONE atomic step that
 * touches shared memory or the store (private bookkeeping is folded into
 * it), and a process may stop taking actions at any point (the scheduler
 * never picks it again: safety is checked on every prefix).
 *
 * Identities: the token of process p is p and so is its identity (one
 * image per process: after an exec the new image has a new nonce, a new
 * identity, and does nothing here).  A writer id is its process's id.
 *
 * Build options (-D..., spin runs cpp on this file):
 *   NL CAP            lanes (2 or 3); records a lane holds (push waits
 *                     while it is full: -EAGAIN, the caller retries)
 *   KA KB KC KD       most messages pushed by A, B, C, D
 *   HAS_B HAS_C HAS_D A_TEN2 A_EXEC   actors and options (above)
 *   A_UNDO            A may undo an attach that pushed nothing (A5: owner
 *                     = 0, then unlock), at most MAXUNDO (1) times
 *   NOKILL_A NOKILL_B NOKILL_C NOKILL_D   that process is never killed
 *   MAXFK             flusher kills (each between a commit and its W2,
 *                     head and C7: the only point where a kill is not the
 *                     same as no kill; see MAPPING.md)
 *   MAXATT            K2's maximum attempts
 *   NO_E0 NO_P5       do not assert E0 (the definition of "ended", at each
 *                     ended mark) / P5; the broken variants use them to
 *                     show the user-visible damage (P3)
 * The default is the protocol with the fixes of MAPPING.md's findings;
 * each finding's text as written is a variant that must fail:
 *   G_AS_WRITTEN      G: owner word loaded once, then the lock (F2)
 *   G_LOCK_FIRST      G: the lock, then the owner word once (F2)
 *   G_REREAD_ONLY     G: owner word, lock, owner word again, without the
 *                     tenure generation (F2: not enough with A5)
 *   ORDER_AS_WRITTEN  E1/E2: "no other lane / no lane holds it" scanned
 *                     before the /proc death test (F3)
 *   E1_AS_WRITTEN     no "gone" mark for an identity (F4)
 *   PROTOCOL_AS_WRITTEN  G_AS_WRITTEN + ORDER_AS_WRITTEN + E1_AS_WRITTEN
 * Broken variants (must fail):
 *   BROKEN_DRAINED_AT_DETACH          a detached lane, once freed, ends its
 *                                     identity for good (the first round)
 *   BROKEN_WRITER_CHECK_ON_BEGIN_ONLY after begin only the incarnation is
 *                                     checked (the first round)
 *   BROKEN_CLAIM_WITHOUT_ENDED        K1 checks only "owner dead by /proc"
 *   BROKEN_END_BEFORE_LAST_LANE       E1's scan does not count DETACHED
 *                                     lanes as holding the identity
 *   BROKEN_CLAIM_TWO_TXNS             K1 and K3 in two transactions
 *   BROKEN_NO_W4                      a restarted flusher skips W4
 *   BROKEN_W2_AFTER_HEAD              W2 writes the slots after head moves
 * Witnesses (each plants an assertion that must be reached):
 *   W_REATTACH_CLAIM W_DUP_REJECTED W_RESTART_W4 W_RECLAIM W_EXEC_CLAIM
 *   W_WAIT_REJECTED W_OTHER_LANE W_GONEMARK W_QUIET_DONE W_EXHAUSTED
 *   W_ABA_CAUGHT (FINE, A_UNDO: the generation caught an owner word that
 *   went A -> 0 -> A around the lock probe)
 */

#ifdef PROTOCOL_AS_WRITTEN
#define G_AS_WRITTEN
#define ORDER_AS_WRITTEN
#define E1_AS_WRITTEN
#endif

#if defined(G_AS_WRITTEN) || defined(G_LOCK_FIRST) || defined(ORDER_AS_WRITTEN)
#ifndef FINE
#define FINE
#endif
#endif
#if defined(G_REREAD_ONLY) && !defined(FINE)
#define FINE
#endif
/* the F2 fix compares the lanes' tenure generation too, where an owner
 * word can go back to 0 other than by the flusher (A5) */
#if defined(FINE) && defined(A_UNDO) && !defined(G_AS_WRITTEN) && \
    !defined(G_LOCK_FIRST) && !defined(G_REREAD_ONLY)
#define GEN_USED
#endif
#ifndef MAXUNDO
#define MAXUNDO 1
#endif

#ifndef NL
#define NL 2
#endif
#ifndef CAP
#define CAP 2
#endif
#ifndef KA
#define KA 1
#endif
#ifndef KB
#define KB 1
#endif
#ifndef KC
#define KC 1
#endif
#ifndef KD
#define KD 1
#endif
#ifndef MAXFK
#define MAXFK 1
#endif
#ifndef MAXATT
#define MAXATT 2
#endif

#define PA 1
#define PB 2
#define PC 3
#define PD 4
#define NP 5

#ifdef HAS_B
#define NEVB (KB + 2)
#else
#define NEVB 0
#endif
#ifdef HAS_C
#define NEVC (KC + 1)
#else
#define NEVC 0
#endif
#ifdef HAS_D
#define NEVD (KD + 1)
#else
#define NEVD 0
#endif
#define NEV (KA + 2 + NEVB + NEVC + NEVD)

/* ---------------- processes ------------------------------------------ */
bool procdead[NP];      /* /proc: the token is dead (SIGKILL)              */
bool execd[NP];         /* the image exec'd (identity gone, /proc alive)   */
#define GONE(p) (procdead[p] || execd[p])
bool went_holding[NP];  /* ghost: exec'd holding a plain lane              */
#ifdef W_REATTACH_CLAIM
bool a_reattached;      /* ghost (witness): A's second tenure began        */
#define A_REATTACHED a_reattached = true
#else
#define A_REATTACHED skip
#endif
/* the producers' own state (kept here so that a kill resets it: a dead
 * process's last values make no distinct states) */
byte pph[NP];           /* tenure phase T_*                                */
byte phs[NP];           /* run handle H_*                                  */
byte pl[NP];            /* its lane                                        */
byte pk[NP];            /* messages pushed + 1                             */
byte pseq[NP];          /* the next seq                                    */
byte pten[NP];          /* A: which tenure                                 */
byte pinc0[NP];         /* BROKEN_CLAIM_TWO_TXNS: K1 passed, K3 pending    */
byte ne;                /* scratch (inside one atomic step)                */
bool ppush[NP];         /* pushed in this tenure (A5 needs none)           */
byte pundo[NP];         /* A5 undos so far                                 */
#define T_NONE  0       /* no lane (yet)                                   */
#define T_ON    1       /* attached                                        */
#define T_DET   2       /* D1 half done: owner = token|DETACHED, locked    */
#define T_OFF   3       /* detached (lock dropped)                         */
#define T_DEAD  4       /* killed or exec'd: takes no more actions         */
#define T_UNDO  5       /* A5 half done: owner = 0, still locked           */
/* its writer (run handle) */
#define H_NONE  0
#define H_OPEN  1
#define H_CLOSED 2



/* ---------------- shared memory: lanes -------------------------------- */
#define DETB 8
#define ID(w) ((w) & 7)
#define ISDET(w) (((w) & DETB) != 0)
byte own[NL];           /* owner word (+ owner_nonce): 0, id, id|DETACHED  */
byte lk[NL];            /* OFD lock of byte 1+lane: 0 free, else holder    */
byte tail[NL];          /* records pushed (positions only grow)           */
byte head[NL];          /* published: everything below is decided         */
byte lrec[NL * CAP];    /* the record (event id) at position p: p % CAP    */
#define REC(l, p) lrec[(l) * CAP + (p) % CAP]
byte slotw[NL];         /* the lane's writer slot: writer                  */
byte slotrw[NL];        /*   rej_writer                                    */
byte slotrp[NL];        /*   rej_pos                                       */
#ifdef GEN_USED
byte gen[NL];           /* F2 fix: tenure generation, bumped by every A3   */
#define GEN_BUMP(L) gen[L]++
#else
#define GEN_BUMP(L) skip
#endif
#ifdef GEN_USED
#define GEN_SAME(l) (gen[l] == wgen[l])
#define GEN_SEEN(l) wgen[l] = gen[l]
#define GEN_FORGET(l) wgen[l] = 0
#else
#define GEN_FORGET(l) skip
#define GEN_SAME(l) true
#define GEN_SEEN(l) skip
#endif

#define ROOM(l) (tail[l] - head[l] < CAP)

/* ---------------- events (ghost: the immutable record contents) ------- */
#define K_BEGIN 1
#define K_MSG   2
#define K_FIN   3
#define E_NONE  0
#define E_RING  1       /* pushed, and the push returned OK (acked)       */
#define E_STORED 2      /* applied to run R                                */
#define E_REJ   3       /* rejected (a rejections row is written)          */
#define E_ASIDE 4       /* stored, then moved to set_aside by a claim      */
byte npushed[NP];       /* events pushed by each writer                    */
/* event ids are given per writer (A's first, then B's, ...), so the
 * order in which two writers push does not make distinct states */
#define EVBASE(p) ((p) == PA -> 0 : ((p) == PB -> KA + 2 : \
                   ((p) == PC -> KA + 2 + NEVB : KA + 2 + NEVB + NEVC)))
byte ev_w[NEV + 1];     /* writer id (= the pushing process)               */
byte ev_kind[NEV + 1];
byte ev_seq[NEV + 1];
byte ev_lane[NEV + 1];
byte ev_pos[NEV + 1];   /* end position: the ticket                        */
byte ev_st[NEV + 1];
byte winc[NP];          /* the incarnation of each writer's handle         */

/* ---------------- the store (LMDB): changed only in whole transactions */
#define R_RUN  1
#define R_DONE 2
#define R_FAIL 3
bool rec_ex;            /* run R's record                                  */
byte rec_w;             /*   current writer                                */
byte rec_own;           /*   owner identity                                */
byte rec_inc;           /*   incarnation                                   */
byte rec_state;
byte rec_seqs;          /*   the (run, seq) rows present: a bit per seq    */
byte rec_att;           /*   attempts                                      */
byte store_cur[NL];     /* persisted cursor of each lane                   */
bool ended[NP];         /* owners table: the identity is ended             */
bool gonemark[NP];      /* owners table: gone, maybe not drained (F4 fix)  */
bool rejrow[NEV + 1];   /* rejections table                                */
/* ghosts */
byte inc_writer[6];     /* P2: the writer of the events of an incarnation  */
byte inc_claims[6];     /* P4: successful claims replacing an incarnation  */
byte fkills;            /* flusher kills so far                            */
bool fidle = true;      /* the flusher is between batches, nothing private */
bool w4_wrote;          /* witness: W4 rewrote a slot after a restart      */

#ifdef NO_E0
bool e0_ended_image_gone, e0_ended_all_drained;
#endif

/* ==================================================================== */
/* W3 as a waiter computes it for event e (once head >= its ticket and
 * its slot is still its writer's; else CKR_ECLOSED): rejected?  Checked
 * (P1: the verdict is the truth) wherever its inputs change: head (C6,
 * R2), the slot (W2, W4), the store rows (K3's set-aside). */
#define W3_DECIDES(e) (ev_st[e] != E_NONE && head[ev_lane[e]] >= ev_pos[e] && \
                       slotw[ev_lane[e]] == ev_w[e])
#define W3_REJ(e) (slotrw[ev_lane[e]] == ev_w[e] && slotrp[ev_lane[e]] <= ev_pos[e])
#ifdef W_WAIT_REJECTED
#define W3_WITNESS(e) assert(!W3_REJ(e))
#else
#define W3_WITNESS(e) skip
#endif
inline check_w3(e)
{
  e = 1;
  do
  :: e <= NEV ->
     if
     :: W3_DECIDES(e) ->
        W3_WITNESS(e);
        p1_w3_verdict_true = (W3_REJ(e) -> ev_st[e] == E_REJ : ev_st[e] == E_STORED);
        assert(p1_w3_verdict_true)
     :: else -> skip
     fi;
     e++
  :: else -> break
  od; e = 0
}

/* ==================================================================== */
/* SIGKILL / exec of process p: every thread stops (unless), the kernel
 * drops its OFD locks at once. */
inline drop_locks(p)
{
  i = 0;
  do
  :: i < NL ->
     if
     :: own[i] == p && execd[p] -> went_holding[p] = true
     :: else -> skip
     fi;
     if
     :: lk[i] == p -> lk[i] = 0
     :: else -> skip
     fi;
     i++
  :: else -> break
  od; i = 0;
  pph[p] = T_DEAD; phs[p] = H_NONE; pl[p] = 0; pk[p] = 0; pseq[p] = 0;
  ppush[p] = false; pundo[p] = 0;
  pten[p] = 0; pinc0[p] = 0
}

#ifdef NOKILL_A
#define KILL_A false
#else
#define KILL_A true
#endif
#ifdef NOKILL_B
#define KILL_B false
#else
#define KILL_B true
#endif
#ifdef NOKILL_C
#define KILL_C false
#else
#define KILL_C true
#endif
#ifdef NOKILL_D
#define KILL_D false
#else
#define KILL_D true
#endif

/* a process that has done nothing yet dies like one that never existed:
 * not modelled */
#define STARTED(p) (pph[p] != T_NONE || phs[p] != H_NONE)

active proctype Killer()
{
  byte i;
end:
  do
  :: d_step { KILL_A && !GONE(PA) && STARTED(PA) -> procdead[PA] = true; drop_locks(PA) }
#ifdef A_EXEC
  :: d_step { !GONE(PA) && STARTED(PA) -> execd[PA] = true; drop_locks(PA) }
#endif
#ifdef HAS_B
  :: d_step { KILL_B && !GONE(PB) && STARTED(PB) -> procdead[PB] = true; drop_locks(PB) }
#endif
#ifdef HAS_C
  :: d_step { KILL_C && !GONE(PC) && STARTED(PC) -> procdead[PC] = true; drop_locks(PC) }
#endif
#ifdef HAS_D
  :: d_step { KILL_D && !GONE(PD) && STARTED(PD) -> procdead[PD] = true; drop_locks(PD) }
#endif
  od
}

/* ==================================================================== */
/* Producers.
 *
 * A1-A4 (acquire a lane) is one atomic step: lock byte 1+lane free and
 * owner word 0 (A2) -> lock it, reset the slots (A3; sw = the reopened
 * writer for a recoverer), owner = token (A4).  The states in between
 * (lock held, owner word 0) look like "lane busy" to another attacher and
 * like "lane free" to the flusher, i.e. like the attach not having begun
 * yet; a lock taken and dropped at once on a lane that is not free (A2
 * fails) only makes the flusher's G see "alive" for a moment, which only
 * delays it (MAPPING.md).  Lanes never used are all alike: an attach
 * takes the lowest of them (symmetry; no behaviour is lost). */
#define FRESH(L) (tail[L] == 0 && own[L] == 0 && lk[L] == 0)
#if NL > 2
#define FRESH_OK(L) (!FRESH(L) || L == 0 || (L == 1 && !FRESH(0)) || \
                     (L == 2 && !FRESH(0) && !FRESH(1)))
#else
#define FRESH_OK(L) (!FRESH(L) || L == 0 || !FRESH(0))
#endif
#define ATTACH(L, cond, me, sw, after) \
  :: d_step { cond && lk[L] == 0 && own[L] == 0 && FRESH_OK(L) -> \
              pl[me] = L; lk[L] = me; \
              slotw[L] = sw; slotrw[L] = 0; slotrp[L] = 0; GEN_BUMP(L); \
              ppush[me] = false; own[L] = me; after }
#if NL > 2
#define ATTACH_ANY(cond, me, sw, after) ATTACH(0, cond, me, sw, after) \
  ATTACH(1, cond, me, sw, after) ATTACH(2, cond, me, sw, after)
#else
#define ATTACH_ANY(cond, me, sw, after) ATTACH(0, cond, me, sw, after) \
  ATTACH(1, cond, me, sw, after)
#endif

/* push(): a complete record in the lane, the push returned OK */
inline push(me, l, kind, seq)
{
  if                                    /* begin: the handle's slot     */
  :: kind == K_BEGIN -> slotw[l] = me; winc[me] = 1
  :: else -> skip
  fi;
  npushed[me]++;
  ppush[me] = true;
  ne = EVBASE(me) + npushed[me];
  assert(ne <= NEV);
  ev_w[ne] = me; ev_kind[ne] = kind; ev_seq[ne] = seq;
  ev_lane[ne] = l;
  REC(l, tail[l]) = ne;
  tail[l]++;
  ev_pos[ne] = tail[l];
  ev_st[ne] = E_RING;
  ne = 0
}

/* phases of a producer's tenure */
/* D1: owner = token|DETACHED (release), then unlock; the handle was
 * closed before (ckr_client_detach requires it) */
#define DETACH_STEPS(me) \
  :: d_step { pph[me] == T_ON -> own[pl[me]] = me | DETB; pph[me] = T_DET; \
              if :: phs[me] == H_OPEN -> phs[me] = H_CLOSED :: else -> skip fi; \
              pk[me] = 0; pseq[me] = 0 } \
  :: d_step { pph[me] == T_DET -> lk[pl[me]] = 0; pph[me] = T_OFF; pl[me] = 0 }
/* a writer: K messages at most, a finish (maybe), in this tenure only */
#define WRITE_STEPS(me, K) \
  :: d_step { pph[me] == T_ON && phs[me] == H_OPEN && pk[me] <= K && ROOM(pl[me]) -> \
              push(me, pl[me], K_MSG, pseq[me]); pk[me]++; pseq[me]++ } \
  :: d_step { pph[me] == T_ON && phs[me] == H_OPEN && ROOM(pl[me]) -> \
              push(me, pl[me], K_FIN, pseq[me]); phs[me] = H_CLOSED; \
              pk[me] = 0; pseq[me] = 0 }
/* begin R (A, B): writer = me, incarnation 1, seq 0 */
#define BEGIN_STEP(me) \
  :: d_step { pph[me] == T_ON && phs[me] == H_NONE && ROOM(pl[me]) -> \
              push(me, pl[me], K_BEGIN, 0); phs[me] = H_OPEN; pk[me] = 1; \
              pseq[me] = 1 }

active proctype ProcA()
{
end:
  do
  ATTACH_ANY(pph[PA] == T_NONE, PA, 0, pph[PA] = T_ON; pten[PA] = 1)
#ifdef A_TEN2
  ATTACH_ANY(pph[PA] == T_OFF && pten[PA] == 1, PA, 0,
             pph[PA] = T_ON; pten[PA] = 2; A_REATTACHED)
#endif
  BEGIN_STEP(PA)
  WRITE_STEPS(PA, KA)
  DETACH_STEPS(PA)
#ifdef A_UNDO
  /* A5: undo an attach that pushed nothing (a client of several lanes
   * that could not get them all): owner = 0 (release), then unlock; the
   * attach failed, and may be tried again */
  :: d_step { pph[PA] == T_ON && !ppush[PA] && pundo[PA] < MAXUNDO ->
              own[pl[PA]] = 0; pph[PA] = T_UNDO }
  :: d_step { pph[PA] == T_UNDO ->
              lk[pl[PA]] = 0; pl[PA] = 0; pundo[PA]++;
              if
              :: pten[PA] == 1 -> pph[PA] = T_NONE; pten[PA] = 0
              :: else -> pph[PA] = T_OFF; pten[PA] = 1
              fi }
#endif
  od
}

#ifdef HAS_B
active proctype ProcB()
{
end:
  do
  ATTACH_ANY(pph[PB] == T_NONE, PB, 0, pph[PB] = T_ON)
  BEGIN_STEP(PB)
  WRITE_STEPS(PB, KB)
  DETACH_STEPS(PB)
  od
}
#endif

/* ---------------- claims (store_recover.c) --------------------------- */
#ifdef BROKEN_CLAIM_WITHOUT_ENDED
#define K1_OK (procdead[rec_own])
#else
#define K1_OK (ended[rec_own])
#endif
#define CLAIMABLE (rec_ex && rec_state == R_RUN && K1_OK)

/* the checks of a successful K1: every acked event of the writer being
 * replaced is already decided (P3: stored, since it is the run's
 * writer); the owner replaced is gone (P5) */
inline check_claim()
{
  i = 1;
  do
  :: i <= NEV ->
     p3_claim_fences_no_acked_event = !(ev_w[i] == rec_w && ev_st[i] == E_RING);
     assert(p3_claim_fences_no_acked_event);
     i++
  :: else -> break
  od; i = 0;
#ifndef NO_P5
  p5_claim_only_if_owner_gone = GONE(rec_own);
  assert(p5_claim_only_if_owner_gone);
#endif
#ifdef W_REATTACH_CLAIM
  assert(!(a_reattached && rec_own == PA && procdead[PA]));
#endif
#ifdef W_EXEC_CLAIM
  assert(!(rec_own == PA && execd[PA]));
#endif
#ifdef W_RECLAIM
  assert(rec_inc < 2);
#endif
  skip
}

/* P4: one successful claim replaces incarnation inc0 */
inline check_p4(inc0)
{
  p4_one_claim_per_incarnation = (inc_claims[inc0] == 0);
  assert(p4_one_claim_per_incarnation);
  inc_claims[inc0]++
}

/* K2/K3: a new incarnation owned by me, or FAILED past the maximum.  The
 * rows past the gap-free prefix are set aside; next_seq = prefix end + 1 */
inline claim_write(me, inc0)
{
  if
  :: rec_att + 1 > MAXATT ->
#ifdef W_EXHAUSTED
     assert(false);
#endif
     rec_state = R_FAIL; pph[me] = T_OFF /* CKR_EEXHAUSTED: no more     */
  :: else ->
     rec_inc = inc0 + 1; rec_att++;
     rec_w = me; rec_own = me;
     winc[me] = rec_inc;
     pseq[me] = 0;
     do
     :: pseq[me] < 8 && (rec_seqs & (1 << pseq[me])) -> pseq[me]++
     :: else -> break
     od;                                /* seq = prefix end + 1         */
     i = 1;
     do
     :: i <= NEV ->
        if
        :: ev_st[i] == E_STORED && ev_seq[i] >= pseq[me] -> ev_st[i] = E_ASIDE
        :: else -> skip
        fi;
        i++
     :: else -> break
     od; i = 0;
     rec_seqs = rec_seqs & ((1 << pseq[me]) - 1);
     phs[me] = H_OPEN; pk[me] = 1
  fi;
  check_w3(e)
}

#ifndef BROKEN_CLAIM_TWO_TXNS
#define CLAIM_STEPS(me) \
  :: d_step { pph[me] == T_NONE && phs[me] == H_NONE && CLAIMABLE -> \
              check_claim(); check_p4(rec_inc); claim_write(me, rec_inc) }
#else
#define CLAIM_STEPS(me) \
  :: d_step { pph[me] == T_NONE && phs[me] == H_NONE && pinc0[me] == 0 && \
              CLAIMABLE -> check_claim(); pinc0[me] = rec_inc } \
  :: d_step { pph[me] == T_NONE && pinc0[me] != 0 -> \
              check_p4(pinc0[me]); claim_write(me, pinc0[me]); pinc0[me] = 0 }
#endif

#define REC_BODY(me, K) \
  byte i, e; \
  bool p3_claim_fences_no_acked_event, p5_claim_only_if_owner_gone, \
       p4_one_claim_per_incarnation, p1_w3_verdict_true; \
end: \
  do \
  CLAIM_STEPS(me) \
  ATTACH_ANY(pph[me] == T_NONE && phs[me] == H_OPEN, me, me, pph[me] = T_ON) \
  WRITE_STEPS(me, K) \
  DETACH_STEPS(me) \
  od

#ifdef HAS_C
active proctype RecC()
{
  REC_BODY(PC, KC)
}
#endif
#ifdef HAS_D
active proctype RecD()
{
  REC_BODY(PD, KD)
}
#endif

/* ==================================================================== */
/* The flusher (flusher.c, store_batch.c) */

/* W2 for one rejected event e: the first rejection of that writer in its
 * slot (rejection is monotone in lane order) */
inline w2write(e)
{
  if
  :: slotw[ev_lane[e]] == ev_w[e] && slotrw[ev_lane[e]] != ev_w[e] ->
     slotrp[ev_lane[e]] = ev_pos[e];
     slotrw[ev_lane[e]] = ev_w[e]
  :: else -> skip
  fi
}

inline reject(e)
{
  assert(ev_st[e] == E_RING);           /* decided once                 */
  ev_st[e] = E_REJ;
  rejrow[e] = true                      /* W1: in the batch transaction */
}

inline store_ev(e)
{
  p1_never_stored_twice = (ev_st[e] == E_RING);
  assert(p1_never_stored_twice);
  ev_st[e] = E_STORED;
  rec_seqs = rec_seqs | (1 << ev_seq[e]);
  /* P2: the stored events of one incarnation come from one writer */
  if
  :: inc_writer[winc[ev_w[e]]] == 0 -> inc_writer[winc[ev_w[e]]] = ev_w[e]
  :: else -> skip
  fi;
  p2_one_writer_per_incarnation = (inc_writer[winc[ev_w[e]]] == ev_w[e]);
  assert(p2_one_writer_per_incarnation)
}

/* the acceptance rule, for event e read from a lane of identity lid */
inline accept(e, lid)
{
  if
  :: ev_kind[e] == K_BEGIN ->
     if
     :: !rec_ex ->                      /* the record is created        */
        rec_ex = true; rec_w = ev_w[e]; rec_own = lid; rec_inc = 1;
        rec_state = R_RUN; rec_att = 0;
        store_ev(e)
     :: else ->                         /* dup_begin                    */
#ifdef W_DUP_REJECTED
        assert(false);
#endif
        reject(e)
     fi
  :: else ->
     if
     :: !rec_ex -> reject(e)                                  /* orphan */
#ifndef BROKEN_WRITER_CHECK_ON_BEGIN_ONLY
     :: rec_ex && (ev_w[e] != rec_w || lid != rec_own) ->
        /* the lane identity never decides alone (writer ids are unique
         * and a writer pushes only from lanes of its own identity) */
        lane_identity_consistent = (ev_w[e] != rec_w);
        assert(lane_identity_consistent);
        reject(e)                                             /* foreign */
#endif
     :: else ->
        if
        :: winc[ev_w[e]] != rec_inc -> reject(e)              /* stale  */
        :: winc[ev_w[e]] == rec_inc && rec_state != R_RUN ->
           reject(e)                                      /* after_end */
        :: winc[ev_w[e]] == rec_inc && rec_state == R_RUN &&
           (rec_seqs & (1 << ev_seq[e])) -> reject(e)       /* dup_seq */
        :: else ->
           store_ev(e);
           if
           :: ev_kind[e] == K_FIN -> rec_state = R_DONE
           :: else -> skip
           fi
        fi
     fi
  fi
}

/* E0: the definition of "ended" (PROTOCOL.md): the identity can never
 * again put an event into the ring, and every event it put there is in
 * the store (decided).  Asserted at every ended mark. */
inline check_e0(x)
{
  e0_ended_image_gone = GONE(x);
  j = 1;
  do
  :: j <= NEV ->
     if
     :: ev_w[j] == x && ev_st[j] == E_RING -> e0_ended_all_drained = false
     :: else -> skip
     fi;
     j++
  :: else -> break
  od; j = 0;
#ifndef NO_E0
  assert(e0_ended_image_gone);
  assert(e0_ended_all_drained);
#endif
  e0_ended_all_drained = true
}

/* "holds the identity x": a lane whose owner word (DETACHED or not)
 * names it; a lane is held until the flusher frees it (C7) */
#ifdef BROKEN_END_BEFORE_LAST_LANE
#define HOLDS(l2, x) (own[l2] == (x))
#else
#define HOLDS(l2, x) (own[l2] != 0 && ID(own[l2]) == (x))
#endif
#if NL > 2
#define HOLDS_ANY(x) (HOLDS(0, x) || HOLDS(1, x) || HOLDS(2, x))
#define HOLDS_OTHER(l, x) ((l != 0 && HOLDS(0, x)) || (l != 1 && HOLDS(1, x)) || \
                           (l != 2 && HOLDS(2, x)))
#else
#define HOLDS_ANY(x) (HOLDS(0, x) || HOLDS(1, x))
#define HOLDS_OTHER(l, x) ((l != 0 && HOLDS(0, x)) || (l != 1 && HOLDS(1, x)))
#endif
#ifdef E1_AS_WRITTEN
#define GONEMARK(x) false
#else
#define GONEMARK(x) gonemark[x]
#endif

#define LANE_QUIET(l) (head[l] == tail[l] && store_cur[l] == tail[l] && \
                       (own[l] == 0 || (!ISDET(own[l]) && lk[l] != 0)))
#if NL > 2
#define LANES_QUIET (LANE_QUIET(0) && LANE_QUIET(1) && LANE_QUIET(2))
#else
#define LANES_QUIET (LANE_QUIET(0) && LANE_QUIET(1))
#endif

#define G_LIVE 0
#define G_DET  1
#define G_DROP 2

/* flusher phases */
#define F_TOP   0       /* between passes                                  */
#define F_LOCK  1       /* owner word seen plain: F_OFD_GETLK next         */
#define F_TAIL  2       /* G done: re-load (F2 fix), tail, records         */
#define F_SCAN  3       /* E1: the scan of the other lanes                 */
#define F_PROC  4       /* E1 as written: the /proc test after the scan    */
#define F_E2SCAN 6      /* E2: the scan of the lanes                       */
#define F_E2PROC 7      /* E2 as written: /proc after the scan             */

/* E1's decision for lane l, from the scan (other) and /proc (pd) */
#ifdef BROKEN_DRAINED_AT_DETACH
#define E1_END(l) ((g[l] == G_DET) || (!other && (g[l] == G_DROP || pd)))
#else
#define E1_END(l) (!other && (g[l] == G_DROP || pd || GONEMARK(x)))
#endif
#ifdef W_OTHER_LANE
#define W_OTHER assert(!(other && g[l] == G_DROP))
#else
#define W_OTHER skip
#endif

/* one pass, after G: the tail, then take n more records (n of the
 * records present; the batch may be cut), then the free decision (E1) */
#if !defined(G_AS_WRITTEN) && !defined(G_LOCK_FIRST)
/* F2 fix: load the owner word again; a free lock counts only if the same
 * plain token was there before and after it */
#ifdef W_ABA_CAUGHT
#define W_ABA assert(!(g[l] == G_DROP && own[l] == wobs[l] && !GEN_SAME(l)))
#else
#define W_ABA skip
#endif
#define RELOAD W_ABA; \
               if :: g[l] == G_DROP && (own[l] != wobs[l] || !GEN_SAME(l)) -> \
                     g[l] = G_LIVE \
               :: else -> skip fi
#else
#define RELOAD skip
#endif
#ifndef ORDER_AS_WRITTEN
#define PD_EARLY pd = procdead[x]       /* F3 fix: /proc before the scan */
#else
#define PD_EARLY skip
#endif
#define TAKE_BODY(n) \
       RELOAD; \
       t = tail[l]; r[l] = r[l] + n; x = ID(wobs[l]); PD_EARLY; \
       if \
       :: g[l] != G_LIVE && r[l] == t -> fr[l] = true; fph = F_SCAN \
       :: else -> fph = F_TOP \
       fi; \
       if \
       :: !fr[l] && r[l] == store_cur[l] -> /* did nothing: dropped */ \
          vis[l] = false; wobs[l] = 0; g[l] = 0; x = 0; pd = false; \
          GEN_FORGET(l); \
          fidle = (nvis == 0) \
       :: else -> vorder[nvis] = l; nvis++ \
       fi; \
       t = 0
#define TAKE(n) \
  :: d_step { fph == F_TAIL && tail[l] - r[l] >= n -> TAKE_BODY(n) }
/* E1: the scan of the other lanes; with the fix, /proc was read before
 * it (in TAKE_BODY) */
#ifndef ORDER_AS_WRITTEN
#define SCAN_BODY \
       other = HOLDS_OTHER(l, x); \
       W_OTHER; \
       fend[l] = E1_END(l); \
       pd = false; other = false; x = 0; fph = F_TOP
#else
#define SCAN_BODY \
       other = HOLDS_OTHER(l, x); \
       W_OTHER; \
       fph = F_PROC
#endif

/* COARSE (the default for the protocol with its fixes): a whole pass is
 * one step -- G (owner word, lock, owner word again), the tail, n more
 * records, and E1's /proc test and scan.  With the fixes of F2 and F3
 * this loses no behaviour (MAPPING.md: every step another process can
 * take in between either commutes with the flusher's loads or makes the
 * F2 re-load answer "not gone", the same as a load before it).  FINE
 * (forced by the as-written variants, which need the steps apart; and by
 * -DFINE) keeps every load a step of its own. */
#define CPASS(L, n) \
  :: d_step { fph == F_TOP && !vis[L] && own[L] != 0 && tail[L] - r[L] >= n -> \
       l = L; fidle = false; vis[l] = true; wobs[l] = own[l]; \
       g[l] = (ISDET(wobs[l]) -> G_DET : (lk[l] != 0 -> G_LIVE : G_DROP)); \
       TAKE_BODY(n); \
       if \
       :: fph == F_SCAN -> SCAN_BODY \
       :: else -> skip \
       fi }
#if CAP >= 3
#define CPASSES(L) CPASS(L, 0) CPASS(L, 1) CPASS(L, 2) CPASS(L, 3)
#elif CAP >= 2
#define CPASSES(L) CPASS(L, 0) CPASS(L, 1) CPASS(L, 2)
#else
#define CPASSES(L) CPASS(L, 0) CPASS(L, 1)
#endif

/* a pass over lane L: G's first load (the owner word; or, G_LOCK_FIRST,
 * the lock) */
#ifndef G_LOCK_FIRST
#define PASS(L) \
  :: d_step { fph == F_TOP && !vis[L] && own[L] != 0 -> \
       l = L; fidle = false; vis[l] = true; wobs[l] = own[l]; GEN_SEEN(l); \
       if \
       :: ISDET(wobs[l]) -> g[l] = G_DET; fph = F_TAIL \
       :: else -> fph = F_LOCK \
       fi }
#else
#define PASS(L) \
  :: d_step { fph == F_TOP && !vis[L] -> \
       l = L; fidle = false; vis[l] = true; \
       g[l] = (lk[l] != 0 -> G_LIVE : G_DROP); \
       fph = F_LOCK }
#endif

/* C6: the batch's ONE store transaction: the acceptance rule for every
 * record taken, in pass order; the lanes' cursors; E1's ended marks (and
 * the F4 fix's gone marks); the rejection rows (W1, in reject()) */
inline commit()
{
       i = 0;
       do
       :: i < nvis ->
          l = vorder[i];
          j = store_cur[l];
          do
          :: j < r[l] -> e = REC(l, j); accept(e, ID(wobs[l])); j++
          :: else -> break
          od;
          store_cur[l] = r[l];
          i++
       :: else -> break
       od;
       i = 0;
       do
       :: i < nvis ->
          l = vorder[i];
          if
          :: fr[l] && fend[l] -> ended[ID(wobs[l])] = true; check_e0(ID(wobs[l]))
          :: else -> skip
          fi;
#ifndef E1_AS_WRITTEN
          if                            /* F4 fix: the identity is gone */
          :: fr[l] && g[l] == G_DROP ->
#ifdef W_GONEMARK
             assert(!HOLDS_OTHER(l, ID(wobs[l])));
#endif
             gonemark[ID(wobs[l])] = true
          :: else -> skip
          fi;
#endif
          i++
       :: else -> break
       od; i = 0; l = 0; j = 0; e = 0;
}

/* W2: after the commit, the rejections go to their slots; then head = r
 * (release); then C7: CAS owner (the word seen at G) -> 0 for each lane
 * freed; then the next batch */
inline publish()
{
#ifndef BROKEN_W2_AFTER_HEAD
       i = 0;
       do
       :: i < nvis ->
          l = vorder[i];
          j = head[l];
          do
          :: j < r[l] ->
             e = REC(l, j);
             if
             :: ev_st[e] == E_REJ -> w2write(e)
             :: else -> skip
             fi;
             j++
          :: else -> break
          od;
          i++
       :: else -> break
       od;
#endif
       i = 0;
       do
       :: i < nvis -> l = vorder[i]; assert(r[l] >= head[l]); head[l] = r[l]; i++
       :: else -> break
       od;
       check_w3(e);
#ifdef BROKEN_W2_AFTER_HEAD
       /* the slots written after head */
       e = 1;
       do
       :: e <= NEV ->
          if
          :: rejrow[e] && vis[ev_lane[e]] ->
             w2write(e)
          :: else -> skip
          fi;
          e++
       :: else -> break
       od; e = 0;
       check_w3(e);
#endif
       i = 0;
       do
       :: i < nvis ->
          l = vorder[i];
          if
          :: fr[l] && own[l] == wobs[l] -> own[l] = 0
          :: else -> skip
          fi;
          i++
       :: else -> break
       od;
       /* the next batch */
       l = 0;
       do
       :: l < NL -> wobs[l] = 0; g[l] = 0; vorder[l] = 0; GEN_FORGET(l);
                    vis[l] = false; fr[l] = false; fend[l] = false; l++
       :: else -> break
       od;
       i = 0; j = 0; e = 0; l = 0; nvis = 0; fph = F_TOP; fidle = true
}

/* R1: claim flusher_owner (one flusher: it succeeds); the private state
 * is lost.  W4: rejection rows above the published head go to their
 * slots; then R2: head = the persisted position. */
inline restart()
{
    l = 0;
    do
    :: l < NL ->
       r[l] = 0; wobs[l] = 0; g[l] = 0; vorder[l] = 0;
       vis[l] = false; fr[l] = false; fend[l] = false; GEN_FORGET(l);
       l++
    :: else -> break
    od; l = 0;
    nvis = 0; i = 0; j = 0; e = 0; t = 0; x = 0; fph = F_TOP;
    pd = false; other = false;
#ifndef BROKEN_NO_W4
    e = 1;
    do
    :: e <= NEV ->
       if
       :: rejrow[e] && ev_pos[e] > head[ev_lane[e]] ->
          if
          :: slotw[ev_lane[e]] == ev_w[e] && slotrw[ev_lane[e]] != ev_w[e] ->
             w4_wrote = true
          :: else -> skip
          fi;
          w2write(e)
       :: else -> skip
       fi;
       e++
    :: else -> break
    od; e = 0;
#endif
#ifdef W_RESTART_W4
    assert(!w4_wrote);
#endif
    l = 0;
    do
    :: l < NL -> assert(store_cur[l] >= head[l]); head[l] = store_cur[l];
                 r[l] = head[l]; l++
    :: else -> break
    od; l = 0;
    check_w3(e);
    fidle = true
  }

active proctype Flusher()
{
  byte l, i, j, e, t, x, nvis, fph;
  byte r[NL], wobs[NL], g[NL], vorder[NL];
#ifdef GEN_USED
  byte wgen[NL];
#endif
  bool vis[NL], fr[NL], fend[NL], pd, other;
  bool p1_never_stored_twice, p2_one_writer_per_incarnation,
       lane_identity_consistent, p1_w3_verdict_true,
       p1_acked_event_decided, l2_gone_owner_claimable;
#ifndef NO_E0
  bool e0_ended_image_gone, e0_ended_all_drained = true;
#endif

  d_step { restart() };

end_top:
  do
  /* ---- a pass over a lane (each lane at most once per batch; a free
   * lane is skipped: it has nothing to read) ---- */
#ifndef FINE
  CPASSES(0)
  CPASSES(1)
#if NL > 2
  CPASSES(2)
#endif
#else
  PASS(0)
  PASS(1)
#if NL > 2
  PASS(2)
#endif
#ifndef G_LOCK_FIRST
  :: d_step { fph == F_LOCK ->                 /* G: F_OFD_GETLK        */
       g[l] = (lk[l] != 0 -> G_LIVE : G_DROP); fph = F_TAIL }
#else
  :: d_step { fph == F_LOCK ->                 /* G: then the owner word */
       wobs[l] = own[l];
       if
       :: wobs[l] == 0 ->                      /* a free lane: dropped  */
          vis[l] = false; g[l] = 0; fph = F_TOP; fidle = (nvis == 0)
       :: ISDET(wobs[l]) -> g[l] = G_DET; fph = F_TAIL
       :: else -> fph = F_TAIL
       fi }
#endif
  TAKE(0)
  TAKE(1)
#if CAP >= 2
  TAKE(2)
#endif
#if CAP >= 3
  TAKE(3)
#endif
  :: d_step { fph == F_SCAN -> SCAN_BODY }
#ifdef ORDER_AS_WRITTEN
  :: d_step { fph == F_PROC ->                 /* /proc after the scan  */
       pd = procdead[x];
       fend[l] = E1_END(l);
       pd = false; other = false; x = 0; fph = F_TOP }
#endif
#endif

  /* ---- C6: the batch's ONE store transaction; then W2, head, C7 (one
   * step, MAPPING.md says why); or the flusher is SIGKILLed right after
   * the commit (the only point where a kill differs from no kill) ---- */
  :: d_step { fph == F_TOP && nvis > 0 -> commit(); publish() }
  :: d_step { fph == F_TOP && nvis > 0 && fkills < MAXFK ->
              commit(); fkills++; restart() }

  /* ---- E2: housekeeping, between batches.  A round that would find
   * the owner alive (fix: tested first) or holding a lane (as written:
   * scanned first) changes nothing, and is not modelled ---- */
#if !defined(FINE)
  :: d_step { fph == F_TOP && nvis == 0 && rec_ex && rec_state == R_RUN &&
              !ended[rec_own] && (procdead[rec_own] || GONEMARK(rec_own)) &&
              !HOLDS_ANY(rec_own) ->
       x = rec_own; ended[x] = true; check_e0(x); x = 0 }
#elif !defined(ORDER_AS_WRITTEN)
  :: d_step { fph == F_TOP && nvis == 0 && rec_ex && rec_state == R_RUN &&
              !ended[rec_own] && (procdead[rec_own] || GONEMARK(rec_own)) ->
       x = rec_own; fidle = false; fph = F_E2SCAN }
  :: d_step { fph == F_E2SCAN ->
       if
       :: !HOLDS_ANY(x) -> ended[x] = true; check_e0(x)
       :: else -> skip
       fi;
       x = 0; fph = F_TOP; fidle = true }
#else
  :: d_step { fph == F_TOP && nvis == 0 && rec_ex && rec_state == R_RUN &&
              !ended[rec_own] && !HOLDS_ANY(rec_own) ->
       x = rec_own; fidle = false; fph = F_E2PROC }
  :: d_step { fph == F_E2PROC ->
       if
       :: procdead[x] -> ended[x] = true; check_e0(x)
       :: else -> skip
       fi;
       x = 0; fph = F_TOP; fidle = true }
#endif

  /* ---- the checks of a quiet system: the flusher between batches and
   * every lane decided and published up to its tail, no tenure gone and
   * not yet freed.  (A self-loop: it changes no state.) ---- */
  :: d_step { fidle && LANES_QUIET ->
       e = 1;
       do
       :: e <= NEV ->
          /* P1: stored (exactly once: checked at each store) or rejected */
          p1_acked_event_decided = (ev_st[e] == E_NONE ||
                                    ev_st[e] == E_STORED || ev_st[e] == E_REJ);
          assert(p1_acked_event_decided);
          e++
       :: else -> break
       od; e = 0;
       /* L2: a run whose owner is detectably gone (dead by /proc, or went
        * holding a lane) is claimable, or E2's next round makes it so */
       l2_gone_owner_claimable = !(rec_ex && rec_state == R_RUN &&
           (procdead[rec_own] || went_holding[rec_own])) ||
           ended[rec_own] || procdead[rec_own] || GONEMARK(rec_own);
       assert(l2_gone_owner_claimable);
#ifdef W_QUIET_DONE
       assert(!(rec_ex && rec_state == R_DONE && rec_inc >= 2));
#endif
       skip }
  od
}

