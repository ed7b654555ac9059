use super::addresses::{ADDRESS_LOG, ADDRESSES};
use super::*;

fn db() -> (tempfile::TempDir, powerplug_storage::RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = powerplug_storage::RedbStore::open(&dir.path().join("wallet.redb")).unwrap();
    (dir, db)
}

fn commit<T>(
    db: &powerplug_storage::RedbStore,
    f: impl FnOnce(&dyn WriteTx) -> Result<T, WalletError>,
) -> Result<T, WalletError> {
    let tx = db.write().unwrap();
    let out = f(&*tx)?;
    tx.commit().unwrap();
    Ok(out)
}

#[test]
fn transfers_move_money_and_balances_add_up_to_what_was_issued() {
    let (_dir, db) = db();
    commit(&db, |tx| {
        issue(tx, "consumer-1", Tokens(100), "fund-1", UnixMs(0))
    })
    .unwrap();
    let t = commit(&db, |tx| {
        transfer(
            tx,
            "consumer-1",
            "grid",
            Tokens(25),
            "consumer-1",
            "pay-1",
            UnixMs(5),
        )
    })
    .unwrap();
    assert_eq!(
        (t.seq, t.amount.get(), t.reference.as_str()),
        (2, 25, "consumer-1")
    );
    assert_eq!(balance(&db, "consumer-1").unwrap().get(), 75);
    assert_eq!(balance(&db, "grid").unwrap().get(), 25);
    assert_eq!(balance(&db, "nobody").unwrap().get(), 0);
    assert_eq!(issued(&db).unwrap().get(), 100);
    assert_eq!(total_balances(&db).unwrap().get(), 100);
}

#[test]
fn a_balance_never_goes_negative_and_a_refused_transfer_changes_nothing() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "a", Tokens(10), "fund", UnixMs(0))).unwrap();
    let err = commit(&db, |tx| {
        transfer(tx, "a", "b", Tokens(11), "a", "k", UnixMs(0))
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            WalletError::InsufficientFunds {
                balance: Tokens(10),
                amount: Tokens(11),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "amount: a holds 10 tokens, cannot pay 11 tokens"
    );
    assert_eq!(
        (
            balance(&db, "a").unwrap().get(),
            balance(&db, "b").unwrap().get()
        ),
        (10, 0)
    );
    assert!(matches!(
        commit(&db, |tx| transfer(
            tx,
            "a",
            "b",
            Tokens(0),
            "a",
            "z",
            UnixMs(0)
        )),
        Err(WalletError::ZeroAmount)
    ));
    assert!(matches!(
        commit(&db, |tx| transfer(
            tx,
            "a",
            "a",
            Tokens(1),
            "a",
            "s",
            UnixMs(0)
        )),
        Err(WalletError::SameAccount)
    ));
    // The key of a refused transfer is still free.
    commit(&db, |tx| {
        transfer(tx, "a", "b", Tokens(10), "a", "k", UnixMs(0))
    })
    .unwrap();
    assert_eq!(balance(&db, "b").unwrap().get(), 10);
}

#[test]
fn repeating_a_transfer_with_its_key_moves_money_once() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "a", Tokens(100), "fund", UnixMs(0))).unwrap();
    let first = commit(&db, |tx| {
        transfer(tx, "a", "b", Tokens(40), "a", "payout-7", UnixMs(1))
    })
    .unwrap();
    let again = commit(&db, |tx| {
        transfer(tx, "a", "b", Tokens(40), "a", "payout-7", UnixMs(2))
    })
    .unwrap();
    assert_eq!(first, again);
    assert_eq!(balance(&db, "a").unwrap().get(), 60);
    let err = commit(&db, |tx| {
        transfer(tx, "a", "b", Tokens(41), "a", "payout-7", UnixMs(3))
    })
    .unwrap_err();
    assert!(matches!(err, WalletError::KeyReused { .. }), "{err}");
}

#[test]
fn an_uncommitted_transaction_leaves_no_trace() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "a", Tokens(100), "fund", UnixMs(0))).unwrap();
    {
        // A crash between deciding and committing: the transaction is dropped.
        let tx = db.write().unwrap();
        transfer(&*tx, "a", "b", Tokens(30), "a", "lost", UnixMs(0)).unwrap();
    }
    assert_eq!(
        (
            balance(&db, "a").unwrap().get(),
            balance(&db, "b").unwrap().get()
        ),
        (100, 0)
    );
    // The same key can now be used: nothing was recorded.
    commit(&db, |tx| {
        transfer(tx, "a", "b", Tokens(30), "a", "lost", UnixMs(0))
    })
    .unwrap();
    assert_eq!(balance(&db, "b").unwrap().get(), 30);
}

#[test]
fn transfers_since_gives_an_accounts_incoming_and_outgoing_in_order() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "c1", Tokens(100), "f1", UnixMs(0))).unwrap();
    commit(&db, |tx| issue(tx, "c2", Tokens(100), "f2", UnixMs(0))).unwrap();
    commit(&db, |tx| {
        transfer(tx, "c1", "grid", Tokens(25), "c1", "p1", UnixMs(1))
    })
    .unwrap();
    commit(&db, |tx| {
        transfer(tx, "c2", "grid", Tokens(50), "c2", "p2", UnixMs(2))
    })
    .unwrap();
    commit(&db, |tx| {
        transfer(tx, "grid", "producer", Tokens(40), "grid", "o1", UnixMs(3))
    })
    .unwrap();
    let all = transfers_since(&db, "grid", 0).unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|t| (t.seq, t.from.as_str(), t.amount.get()))
        .collect();
    assert_eq!(seen, [(3, "c1", 25), (4, "c2", 50), (5, "grid", 40)]);
    let newer = transfers_since(&db, "grid", 4).unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].to.as_str(), "producer");
    assert!(transfers_since(&db, "grid", 5).unwrap().is_empty());
}

#[test]
fn random_traffic_never_creates_or_loses_money() {
    let (_dir, db) = db();
    let accounts = ["a", "b", "c", "d", "e"];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (i, account) in accounts.iter().enumerate() {
        commit(&db, |tx| {
            issue(tx, account, Tokens(1_000), &format!("fund-{i}"), UnixMs(0))
        })
        .unwrap();
    }
    let tx = db.write().unwrap();
    for i in 0..2_000 {
        let from = accounts[(next() % 5) as usize];
        let to = accounts[(next() % 5) as usize];
        let amount = next() % 400;
        // Some fail (same account, zero, too much); none may change the sum.
        let _ = transfer(
            &*tx,
            from,
            to,
            Tokens(amount),
            from,
            &format!("t-{}", next() % 1_500),
            UnixMs(i),
        );
    }
    tx.commit().unwrap();
    assert_eq!(total_balances(&db).unwrap().get(), 5_000);
    assert_eq!(issued(&db).unwrap().get(), 5_000);
}

#[test]
fn an_account_or_key_with_a_zero_byte_is_refused_not_merged_into_another() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "bob", Tokens(10), "fund", UnixMs(0))).unwrap();
    assert!(matches!(
        commit(&db, |tx| issue(
            tx,
            "bob\0",
            Tokens(10),
            "fund-2",
            UnixMs(0)
        )),
        Err(WalletError::BadAccount(_))
    ));
    assert!(matches!(
        commit(&db, |tx| transfer(
            tx,
            "bob",
            "grid\0",
            Tokens(1),
            "bob",
            "k",
            UnixMs(0)
        )),
        Err(WalletError::BadAccount(_))
    ));
    assert!(matches!(
        commit(&db, |tx| transfer(
            tx,
            "bob",
            "grid",
            Tokens(1),
            "bob",
            "k\0",
            UnixMs(0)
        )),
        Err(WalletError::BadAccount(_))
    ));
    assert_eq!(
        (
            balance(&db, "bob").unwrap().get(),
            issued(&db).unwrap().get()
        ),
        (10, 10)
    );
}

#[test]
fn a_page_of_transfers_reads_only_the_page() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "a", Tokens(100), "fund", UnixMs(0))).unwrap();
    for n in 0..10 {
        commit(&db, |tx| {
            transfer(
                tx,
                "a",
                "grid",
                Tokens(1),
                "a",
                &format!("a/{n}"),
                UnixMs(0),
            )
        })
        .unwrap();
    }
    let page = transfers_page(&db, "a", 0, 4).unwrap();
    assert_eq!(page.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let next = transfers_page(&db, "a", 4, 100).unwrap();
    assert_eq!(next.len(), 7);
    assert_eq!(host_key("payout/1/0"), "$payout/1/0");
}

/// Pays `amount` from `from` to `grid` under `from`'s key `key`.
fn pay(db: &powerplug_storage::RedbStore, from: &str, amount: u64, key: &str) -> Transfer {
    commit(db, |tx| {
        transfer(tx, from, "grid", Tokens(amount), from, key, UnixMs(0))
    })
    .unwrap()
}

#[test]
fn pruning_keeps_balances_and_each_payers_latest_payment() {
    let (_dir, db) = db();
    for who in ["a", "b"] {
        commit(&db, |tx| {
            issue(tx, who, Tokens(100), &format!("fund-{who}"), UnixMs(0))
        })
        .unwrap();
    }
    let a1 = pay(&db, "a", 5, "a/1");
    let a2 = pay(&db, "a", 6, "a/2");
    let b1 = pay(&db, "b", 7, "b/1");
    let a3 = pay(&db, "a", 8, "a/3");
    let balances = |db: &powerplug_storage::RedbStore| {
        ["a", "b", "grid"].map(|w| balance(db, w).unwrap().get())
    };
    let before = balances(&db);

    // An archive that fails keeps everything where it was.
    let refused = prune_transfers(&db, a3.seq, &mut |_| anyhow::bail!("disk full"));
    assert!(refused.is_err());
    assert_eq!(transfers_floor(&db).unwrap(), 0);
    assert_eq!(by_key(&db, "a/1").unwrap(), Some(a1.clone()));

    // Up to, not including, a3: a1 and a2 go; b1 is b's latest, fund-b the
    // issuer's. What goes, goes to the archive.
    let mut archived = Vec::new();
    let pruned = prune_transfers(&db, a3.seq, &mut |t| {
        archived.extend_from_slice(t);
        Ok(())
    })
    .unwrap();
    assert_eq!(pruned.deleted, 3, "fund-a, a/1, a/2");
    let keys: Vec<&str> = archived.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["fund-a", "a/1", "a/2"]);
    assert!(pruned.bytes > 0);
    assert_eq!(transfers_floor(&db).unwrap(), a3.seq);
    assert_eq!(balances(&db), before, "balances stay");
    assert_eq!(total_balances(&db).unwrap(), issued(&db).unwrap());
    for gone in [&a1, &a2] {
        assert_eq!(by_key(&db, &gone.key).unwrap(), None);
    }
    assert_eq!(by_key(&db, "b/1").unwrap(), Some(b1.clone()));
    let seen: Vec<u64> = transfers_since(&db, "grid", 0)
        .unwrap()
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(seen, vec![b1.seq, a3.seq]);

    // b's latest, retried, is still recognised: no money moves twice.
    assert_eq!(pay(&db, "b", 7, "b/1"), b1);
    assert_eq!(balances(&db), before);

    // b pays again: its kept payment, below the floor, goes at the next
    // pruning, even one that does not raise the floor.
    let b2 = pay(&db, "b", 1, "b/2");
    assert_eq!(by_key(&db, "b/1").unwrap(), Some(b1));
    let mut archived = Vec::new();
    let pruned = prune_transfers(&db, 1, &mut |t| {
        archived.extend_from_slice(t);
        Ok(())
    })
    .unwrap();
    assert_eq!((pruned.deleted, archived[0].key.as_str()), (1, "b/1"));
    assert_eq!(by_key(&db, "b/1").unwrap(), None);
    assert_eq!(by_key(&db, "b/2").unwrap(), Some(b2));

    // The floor never goes down.
    assert_eq!(
        prune_transfers(&db, 1, &mut |_| Ok(())).unwrap(),
        Pruned::default()
    );
    assert_eq!(transfers_floor(&db).unwrap(), a3.seq);
}

#[test]
fn pruned_addresses_no_longer_resolve_newer_ones_do() {
    let (_dir, db) = db();
    let seed = [7u8; 32];
    let addresses: Vec<String> = (0..5)
        .map(|_| commit(&db, |tx| receive_address(tx, &seed, "grid")).unwrap())
        .collect();
    assert_eq!(addresses_issued(&db).unwrap(), 5);
    let pruned = prune_addresses(&db, 4).unwrap();
    assert_eq!(pruned.deleted, 3);
    for (i, address) in addresses.iter().enumerate() {
        let expected = (i >= 3).then(|| "grid".to_owned());
        assert_eq!(
            resolve(&db, &seed, address).unwrap(),
            expected,
            "address {i}"
        );
    }
    // Numbering goes on past the pruned ones, even when all went.
    prune_addresses(&db, 6).unwrap();
    assert_eq!(addresses_issued(&db).unwrap(), 5);
    let newer = commit(&db, |tx| receive_address(tx, &seed, "grid")).unwrap();
    assert_eq!(addresses_issued(&db).unwrap(), 6);
    prune_addresses(&db, 7).unwrap();
    assert_eq!(resolve(&db, &seed, &newer).unwrap(), None);
}

#[test]
fn enciphered_addresses_resolve_by_their_log_row_under_their_seed_only() {
    let (_dir, db) = db();
    let seed = [7u8; 32];
    let addresses: Vec<String> = (0..64)
        .map(|i| {
            let account = if i % 2 == 0 { "grid" } else { "other" };
            commit(&db, |tx| receive_address(tx, &seed, account)).unwrap()
        })
        .collect();
    let distinct: std::collections::HashSet<_> = addresses.iter().collect();
    assert_eq!(distinct.len(), 64);
    for (i, address) in addresses.iter().enumerate() {
        assert!(
            address.starts_with("pp2") && address.len() == 43,
            "{address}"
        );
        assert_eq!(Enciphered::new(&seed).number(address), Some(i as u64 + 1));
        let account = if i % 2 == 0 { "grid" } else { "other" };
        assert_eq!(
            resolve(&db, &seed, address).unwrap().as_deref(),
            Some(account)
        );
        // No row under its text: the log's row is the only one.
        let by_text = db
            .read()
            .unwrap()
            .get(ADDRESSES, &key::of(&[address]))
            .unwrap();
        assert_eq!(by_text, None);
        // Another seed's ledger, or one character changed: no such address.
        assert_eq!(resolve(&db, &[8; 32], address).unwrap(), None);
        for at in [3, 20, 42] {
            let mut forged = address.clone().into_bytes();
            forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
            let forged = String::from_utf8(forged).unwrap();
            assert_eq!(Enciphered::new(&seed).number(&forged), None, "{forged}");
            assert_eq!(resolve(&db, &seed, &forged).unwrap(), None);
        }
    }
    // Numbers past the log's end are no one's.
    let unused = Enciphered::new(&seed).encipher(65);
    assert_eq!(resolve(&db, &seed, &unused).unwrap(), None);
    for bad in ["pp2", "pp2zz", "", "pp1", &format!("{}0", addresses[0])] {
        assert_eq!(resolve(&db, &seed, bad).unwrap(), None, "{bad}");
    }
}

/// Addresses that do not carry their number: recorded under their text too.
struct Plain;

impl Addresses for Plain {
    fn derive(
        &self,
        account: &str,
        index: u64,
        _: u64,
        count: u64,
    ) -> Result<Vec<String>, WalletError> {
        Ok((index..index + count)
            .map(|i| format!("{account}-{i}"))
            .collect())
    }
}

#[test]
fn addresses_of_another_format_resolve_by_their_text_beside_enciphered_ones_and_prune() {
    let (_dir, db) = db();
    let seed = [7u8; 32];
    let plain = commit(&db, |tx| receive_addresses(tx, &Plain, "grid", 3)).unwrap();
    assert_eq!(plain, ["grid-0", "grid-1", "grid-2"]);
    let enciphered = commit(&db, |tx| receive_address(tx, &seed, "grid")).unwrap();
    assert_eq!(Enciphered::new(&seed).number(&enciphered), Some(4));
    for address in plain.iter().chain([&enciphered]) {
        assert_eq!(
            resolve(&db, &seed, address).unwrap().as_deref(),
            Some("grid")
        );
    }
    // The seed's holder enciphering a number another format's address
    // took gets no account for it.
    let taken = Enciphered::new(&seed).encipher(2);
    assert_eq!(resolve(&db, &seed, &taken).unwrap(), None);
    // Pruning takes each with what it was recorded under.
    let pruned = prune_addresses(&db, 5).unwrap();
    assert_eq!(pruned.deleted, 4);
    for address in plain.iter().chain([&enciphered]) {
        assert_eq!(resolve(&db, &seed, address).unwrap(), None);
    }
    let empty = |db: &powerplug_storage::RedbStore| {
        let tx = db.read().unwrap();
        tx.range(ADDRESSES, &[], None, Order::Ascending, 10)
            .unwrap()
            .is_empty()
            && tx
                .range(ADDRESS_LOG, &[], None, Order::Ascending, 10)
                .unwrap()
                .is_empty()
    };
    assert!(empty(&db));
    // More rows than one transaction takes.
    let many = commit(&db, |tx| receive_addresses(tx, &Plain, "grid", 2_500)).unwrap();
    let pruned = prune_addresses(&db, addresses_issued(&db).unwrap() + 1).unwrap();
    assert_eq!(pruned.deleted, 2_500);
    assert_eq!(addresses_floor(&db).unwrap(), 2_505);
    assert_eq!(resolve(&db, &seed, &many[2_499]).unwrap(), None);
    assert!(empty(&db));
}

#[test]
fn a_tick_of_addresses_is_one_row_that_goes_once_all_of_it_is_below_the_floor() {
    let (_dir, db) = db();
    let seed = [7u8; 32];
    let first = commit(&db, |tx| receive_address(tx, &seed, "grid")).unwrap();
    let run = commit(&db, |tx| {
        receive_addresses(tx, &Enciphered::new(&seed), "grid", 1_000)
    })
    .unwrap();
    let last = commit(&db, |tx| receive_address(tx, &seed, "other")).unwrap();
    assert_eq!(addresses_issued(&db).unwrap(), 1_002);
    let rows = |db: &powerplug_storage::RedbStore| {
        let tx = db.read().unwrap();
        tx.range(ADDRESS_LOG, &[], None, Order::Ascending, 10)
            .unwrap()
            .len()
    };
    assert_eq!(rows(&db), 3);
    for (i, address) in run.iter().enumerate() {
        assert_eq!(Enciphered::new(&seed).number(address), Some(i as u64 + 2));
        assert_eq!(
            resolve(&db, &seed, address).unwrap().as_deref(),
            Some("grid")
        );
    }
    assert_eq!(
        resolve(&db, &seed, &last).unwrap().as_deref(),
        Some("other")
    );
    // A floor inside the run: below it nothing resolves, above it all does,
    // and the run's row stays.
    let pruned = prune_addresses(&db, 500).unwrap();
    assert_eq!(pruned.deleted, 1, "the first address's row alone");
    assert_eq!(addresses_floor(&db).unwrap(), 500);
    assert_eq!(resolve(&db, &seed, &first).unwrap(), None);
    for (i, address) in run.iter().enumerate() {
        let expected = (i as u64 + 2 >= 500).then_some("grid");
        assert_eq!(resolve(&db, &seed, address).unwrap().as_deref(), expected);
    }
    assert_eq!(rows(&db), 2);
    // Past its end, the run goes in one; numbering goes on after it.
    let pruned = prune_addresses(&db, 1_002).unwrap();
    assert_eq!(pruned.deleted, 1_000);
    assert_eq!(rows(&db), 1);
    assert_eq!(resolve(&db, &seed, &run[999]).unwrap(), None);
    assert_eq!(
        resolve(&db, &seed, &last).unwrap().as_deref(),
        Some("other")
    );
    let next = commit(&db, |tx| receive_address(tx, &seed, "grid")).unwrap();
    assert_eq!(Enciphered::new(&seed).number(&next), Some(1_003));
}

#[test]
fn pruning_in_many_chunks_reaches_the_floor() {
    let (_dir, db) = db();
    commit(&db, |tx| issue(tx, "a", Tokens(10_000), "fund", UnixMs(0))).unwrap();
    for i in 0..2_500 {
        pay(&db, "a", 1, &format!("a/{i}"));
    }
    let last = last_seq(&db).unwrap();
    let pruned = prune_transfers(&db, last + 1, &mut |_| Ok(())).unwrap();
    // All but a's latest and the issue (the issuer's latest).
    assert_eq!(pruned.deleted, 2_499);
    assert_eq!(transfers_since(&db, "a", 0).unwrap().len(), 2);
    assert_eq!(balance(&db, "grid").unwrap().get(), 2_500);
}

#[test]
fn an_enciphered_address_is_the_same_in_every_version() {
    // Addresses handed out before an upgrade must still resolve after it:
    // the cipher is part of the store's format.
    let cipher = Enciphered::new(&[7; 32]);
    let address = cipher.encipher(1);
    assert_eq!(address, "pp2661635ed9ae1aa097026bb98ee5623aecb77b885");
    assert_eq!(cipher.number(&address), Some(1));
}

/// The sum runs over pages of balances (more accounts than a page here),
/// and a balance that no issue or transfer made shows as not conserved.
#[test]
fn conservation_sums_every_page_of_balances_and_finds_a_stray_one() {
    let (_dir, db) = db();
    let accounts = 25_001u64;
    commit(&db, |tx| {
        for n in 0..accounts {
            issue(
                tx,
                &format!("consumer-{n}"),
                Tokens(n + 1),
                &format!("fund-{n}"),
                UnixMs(0),
            )?;
        }
        Ok(())
    })
    .unwrap();
    let money = conservation(&db).unwrap();
    let issued_sum = accounts * (accounts + 1) / 2;
    assert_eq!(
        money,
        Conservation {
            held: Tokens(issued_sum),
            issued: Tokens(issued_sum)
        }
    );
    assert!(money.holds());

    // A row written behind the ledger's back (a bug, a hand-edited store).
    let tx = db.write().unwrap();
    tx.put(BALANCES, &key::of(&[&"zz-stray"]), &7u64.to_be_bytes())
        .unwrap();
    tx.commit().unwrap();
    let money = conservation(&db).unwrap();
    assert_eq!(
        (money.held.get(), money.issued.get()),
        (issued_sum + 7, issued_sum)
    );
    assert!(!money.holds());
}
