use super::*;
use crate::sensor::i2c::fake::{FakeOpener, RegisterChip};
use crate::sensor::iio;
use crate::sensor::sht3x::fake::FakeSht3x;

struct Board {
    _dir: tempfile::TempDir,
    env: ProbeEnv,
}

/// A board with: bus 1 (BME280 0x76, SHT31 0x44, ADS1115 0x48, unknown
/// chip at 0x77), bus 2 (BMP280 0x77, kernel bme280 driver on 0x76), an
/// IIO device for that driver, two exported GPIOs.
fn board() -> Board {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let dev = dir.path().join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    for n in [2, 1, 9] {
        std::fs::write(dev.join(format!("i2c-{n}")), "").unwrap();
    }
    std::fs::write(dev.join("i2c-x"), "").unwrap();
    let opener = FakeOpener::new();
    let b1 = opener.bus(1);
    b1.attach(0x76, RegisterChip::new().with(0xd0, &[0x60]));
    b1.attach(0x77, RegisterChip::new().with(0xd0, &[0x33]));
    b1.attach(0x44, FakeSht3x::new(1, 2));
    b1.attach(0x48, RegisterChip::new().with(0x01, &[0x85, 0x83]));
    let b2 = opener.bus(2);
    b2.attach(0x77, RegisterChip::new().with(0xd0, &[0x58]));
    b2.attach(0x76, RegisterChip::new().with(0xd0, &[0x60]));
    // Bus 9 exists in /dev but cannot be opened (no fake for it).
    let bound = sys.join("bus/i2c/devices/2-0076");
    std::fs::create_dir_all(&bound).unwrap();
    std::fs::write(bound.join("name"), "bme280\n").unwrap();
    iio::fake::device(
        &sys,
        0,
        "bme280",
        &[
            ("in_temp_input", "25080"),
            ("in_pressure_input", "100.6"),
            ("in_humidityrelative_input", "45000"),
        ],
    );
    iio::fake::device(
        &sys,
        1,
        "vcnl4000",
        &[("in_proximity_raw", "3"), ("in_illuminance_raw", "40")],
    );
    for (n, d, v) in [(17, "in", "1"), (27, "out", "0")] {
        let g = sys.join(format!("class/gpio/gpio{n}"));
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join("direction"), format!("{d}\n")).unwrap();
        std::fs::write(g.join("value"), format!("{v}\n")).unwrap();
    }
    Board {
        env: ProbeEnv {
            sysfs_root: sys,
            dev_root: dev,
            i2c: Arc::new(opener),
        },
        _dir: dir,
    }
}

#[test]
fn finds_chips_by_id_kernel_bound_addresses_iio_and_gpios() {
    let b = board();
    let f = probe(&b.env);
    assert_eq!(f.buses, [1, 2, 9]);
    let summary: Vec<String> = f
        .i2c
        .iter()
        .map(|x| match x {
            I2cFinding::Chip {
                bus, address, kind, ..
            } => format!("{bus}:{address:02x}:{kind:?}"),
            I2cFinding::KernelBound {
                bus,
                address,
                driver,
            } => format!("{bus}:{address:02x}:kernel {driver}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "1:76:Bme280",
            "1:44:Sht3x",
            "1:48:Ads1x15",
            "2:76:kernel bme280",
            "2:77:Bmp280"
        ]
    );
    assert_eq!(f.iio.len(), 2);
    assert_eq!(f.gpios.len(), 2);
    assert_eq!(
        f.gpios[0],
        GpioInfo {
            number: 17,
            direction: "in".into(),
            value: Some(1)
        }
    );
    assert_eq!(f.problems.len(), 1, "{:?}", f.problems);
    assert!(f.problems[0].contains("i2c-9"));
}

#[test]
fn rendered_listing_and_snippet() {
    let b = board();
    let text = render(&probe(&b.env));
    for needle in [
        "I2C buses: /dev/i2c-1, /dev/i2c-2, /dev/i2c-9",
        "i2c-1 0x76: BME280 (temperature, pressure, humidity) [chip ID 0x60 in register 0xd0]",
        "i2c-1 0x44: SHT3x (temperature, humidity) [status word 0x8010 with a valid CRC]",
        "i2c-1 0x48: ADS1015/ADS1115 ADC",
        "i2c-2 0x76: in use by kernel driver `bme280`",
        "iio:device0 `bme280`: in_humidityrelative, in_pressure, in_temp",
        "GPIO 17: in, value 1",
        "  - type: bme280\n    name: bme280_1_76\n    bus: 1\n    address: 0x76",
        "  - type: sht3x\n    name: sht3x_1_44",
        "  - type: bmp280\n    name: bmp280_2_77",
        "      - {attr: in_temp, name: temperature}",
        "      # - {attr: in_proximity, name: proximity, unit: ?}",
        "#   - {name: gpio17, pin: 17}",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("gpio27, pin"), "{text}");
}

#[test]
fn snippet_passes_check_config() {
    let b = board();
    let text = render(&probe(&b.env));
    let snippet = &text[text.find("\nsensors:").unwrap() + 1..];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(
        &path,
        format!(
            "identity:\n  aor: sip:sensor-1@example.net\nsip:\n  collector: sip:collector@example.net\n  transport: udp\nsecrets_file: {}\n{snippet}",
            dir.path().join("none").display()
        ),
    )
    .unwrap();
    let files = crate::config::ConfigFiles::new(vec![path], vec![]);
    let c = crate::config::load(&files).unwrap_or_else(|e| panic!("{e}\n---\n{snippet}"));
    let names: Vec<&str> = c.sensors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bme280_1_76",
            "sht3x_1_44",
            "bmp280_2_77",
            "bme280",
            "vcnl4000"
        ]
    );
    assert_eq!(c.stream.channels.len(), 3 + 2 + 2 + 3 + 1);
}

#[test]
fn an_empty_board_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let env = ProbeEnv {
        sysfs_root: dir.path().join("sys"),
        dev_root: dir.path().join("dev"),
        i2c: Arc::new(FakeOpener::new()),
    };
    let f = probe(&env);
    assert_eq!(f, Findings::default());
    let text = render(&f);
    assert!(text.contains("I2C buses: none"));
    assert!(text.contains("(no supported sensor found)"));
}
