//! The IOTA edge against the loopback node emulator: the real `iota-client`
//! builds, signs, works and posts every block; the emulator takes them only
//! when the client's own types say they are valid.

use ed25519_dalek::SigningKey;
use powerplug_channel::{ChannelReader, ChannelWriter, Transport};
use powerplug_iota::emulator::{Emulator, HRP};
use powerplug_iota::{Bech32Wallet, IotaTransport, Node, NodeConfig, anchor};

const COIN: u32 = 4219;

fn config(emulator: &Emulator) -> NodeConfig {
    NodeConfig {
        confirm_every_secs: 0,
        ..NodeConfig::new(emulator.url())
    }
}

fn funded(seeds: &[[u8; 32]]) -> (Emulator, Vec<String>) {
    let wallets: Vec<String> = seeds
        .iter()
        .map(|s| Bech32Wallet::new(s, HRP, COIN).unwrap().address(0).unwrap())
        .collect();
    let funds: Vec<(&str, u64)> = wallets
        .iter()
        .map(|w| (w.as_str(), 1_000_000_000_000))
        .collect();
    (Emulator::start(1, &funds).unwrap(), wallets)
}

#[test]
fn a_restricted_channel_goes_through_the_tangle_and_back_in_order() {
    let seed = [7; 32];
    let (emulator, wallets) = funded(&[seed]);
    let tangle = IotaTransport::connect(config(&emulator), &seed).unwrap();
    assert_eq!(
        tangle.wallet(),
        wallets[0],
        "the transport pays from the seed's first address"
    );

    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[1; 32]), true).unwrap();
    writer.hello(&tangle).unwrap();
    writer.publish(&tangle, b"412 Wh".to_vec()).unwrap();
    // Forty messages at once: several transactions (a block holds 32 KiB).
    let many: Vec<_> = (0..40)
        .map(|i| {
            writer
                .prepare(powerplug_channel::Message::Data(vec![i as u8; 1000]))
                .unwrap()
        })
        .collect();
    assert!(tangle.put_many(&many).unwrap().is_empty());
    let blocks = emulator.blocks();
    assert!(blocks >= 4, "42 messages of up to 1 KiB in {blocks} blocks");

    let mut reader = ChannelReader::new(&writer.info()).unwrap();
    let poll = reader.poll(&tangle).unwrap();
    assert_eq!(poll.data.len(), 41);
    assert_eq!(poll.data[0], b"412 Wh");
    for (i, d) in poll.data[1..].iter().enumerate() {
        assert_eq!(d, &vec![i as u8; 1000], "message {i} in its place");
    }
    assert_eq!(reader.poll(&tangle).unwrap().data.len(), 0, "nothing new");

    // Every message locked a deposit at the wallet's second address; no
    // token was made or lost on the way.
    let left = emulator.balance(&wallets[0]).unwrap();
    let deposits = emulator
        .balance(
            &Bech32Wallet::new(&seed, HRP, COIN)
                .unwrap()
                .address(1)
                .unwrap(),
        )
        .unwrap();
    assert!(deposits > 42 * 100_000, "{deposits}");
    assert_eq!(left + deposits, 1_000_000_000_000);
    assert_eq!(emulator.refused(), 0);

    // A resend of what is on the Tangle already posts nothing.
    assert!(tangle.put_many(&many).unwrap().is_empty());
    assert_eq!(emulator.blocks(), blocks);
}

#[test]
fn junk_under_a_channel_address_is_dropped_by_the_reader() {
    let (honest, mallory) = ([1; 32], [2; 32]);
    let (emulator, _) = funded(&[honest, mallory]);
    let tangle = IotaTransport::connect(config(&emulator), &honest).unwrap();
    let spam = IotaTransport::connect(config(&emulator), &mallory).unwrap();

    let mut writer = ChannelWriter::new(SigningKey::from_bytes(&[3; 32]), false).unwrap();
    writer.hello(&tangle).unwrap();
    let next = writer
        .prepare(powerplug_channel::Message::Data(b"real".to_vec()))
        .unwrap();
    // Mallory gets there first, at the same address, with her own bytes.
    let mut forged = next.clone();
    forged.bytes = b"forged reading".to_vec();
    spam.put_many(&[forged]).unwrap();
    tangle.put_many(&[next]).unwrap();

    let mut reader = ChannelReader::new(&writer.info()).unwrap();
    let poll = reader.poll(&tangle).unwrap();
    assert_eq!(poll.data, [b"real".to_vec()]);
}

#[test]
fn a_settlement_is_anchored_and_read_back() {
    let (emulator, _) = funded(&[]);
    let node = Node::connect(config(&emulator)).unwrap();
    let anchored = anchor::Anchored {
        grid: "grid".into(),
        tick: 42,
        settlement: "ab".repeat(32),
    };
    let block = anchor::post(&node, &anchored).unwrap();
    let found = anchor::read(&node, &block).unwrap();
    assert_eq!(found.anchored, anchored);
    let later = anchor::post(&node, &anchored).unwrap();
    assert!(anchor::read(&node, &later).unwrap().milestone > found.milestone);
    let unknown = format!("0x{}", "00".repeat(32));
    assert!(anchor::read(&node, &unknown).is_err(), "no such block");
    assert!(anchor::read(&node, "0x12").is_err(), "no block id");
}

#[test]
fn receive_addresses_are_the_ones_the_client_derives_from_the_seed() {
    let seed = [9; 32];
    let wallet = Bech32Wallet::new(&seed, "smr", COIN).unwrap();
    let secret =
        iota_client::secret::SecretManager::try_from_hex_seed(&format!("0x{}", "09".repeat(32)))
            .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (account, index) in [(0u32, 0u32), (0, 1), (0, 77), (1, 3)] {
        let expected = runtime
            .block_on(
                iota_client::api::GetAddressesBuilder::new(&secret)
                    .with_coin_type(COIN)
                    .with_account_index(account)
                    .with_bech32_hrp("smr")
                    .with_range(index..index + 1)
                    .finish(),
            )
            .unwrap();
        let n = ((account as u64) << 31) + index as u64;
        assert_eq!(
            wallet.address(n).unwrap(),
            expected[0],
            "transfer index {n}"
        );
        assert!(expected[0].starts_with("smr1"));
    }
    assert_ne!(wallet.address(0).unwrap(), wallet.address(1).unwrap());
    assert!(Bech32Wallet::new(&seed, "SMR!", COIN).is_err());
}

#[test]
fn a_block_the_client_types_refuse_changes_nothing() {
    let (emulator, _) = funded(&[]);
    let agent = ureq::Agent::new_with_defaults();
    let answer = agent
        .post(&format!("{}/api/core/v2/blocks", emulator.url()))
        .header("content-type", "application/vnd.iota.serializer-v1")
        .config()
        .http_status_as_error(false)
        .build()
        .send(&[2u8, 1, 0, 0][..])
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!((emulator.blocks(), emulator.refused()), (0, 1));
}

#[test]
fn an_unreachable_node_is_an_error_not_a_crash() {
    assert!(Node::connect(NodeConfig::new("http://127.0.0.1:1")).is_err());
}
