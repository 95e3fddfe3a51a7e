use super::fake::FakeBme280;
use super::*;
use crate::sensor::i2c::fake::FakeBus;

/// The worked example of the Bosch datasheets (BMP280 DS section 3.12,
/// identical temperature/pressure trimming in the BME280), plus humidity
/// trimming values of a real BME280.
fn example_calibration() -> Calibration {
    Calibration {
        t1: 27504,
        t2: 26435,
        t3: -1000,
        p1: 36477,
        p2: -10685,
        p3: 3024,
        p4: 2855,
        p5: 140,
        p6: -7,
        p7: 15500,
        p8: -14600,
        p9: 6000,
        h1: 75,
        h2: 362,
        h3: 0,
        h4: 313,
        h5: 50,
        h6: 30,
    }
}

const EXAMPLE: RawSample = RawSample {
    adc_p: 415_148,
    adc_t: 519_888,
    adc_h: 30_000,
};

#[test]
fn datasheet_example_temperature_is_25_08_celsius() {
    let (t, t_fine) = example_calibration().compensate_t(519_888);
    assert_eq!(t_fine, 128_422);
    assert_eq!(t, 2508);
}

#[test]
fn datasheet_example_pressure() {
    let cal = example_calibration();
    let (_, t_fine) = cal.compensate_t(519_888);
    let q24_8 = cal.compensate_p(415_148, t_fine).unwrap();
    // The datasheet's 64-bit integer routine; its table gives 100653.27 Pa
    // from the floating-point routine.
    assert_eq!(q24_8, 25_767_233);
    let pa = f64::from(q24_8) / 256.0;
    assert!((pa - 100_653.27).abs() < 0.03, "{pa}");
}

/// The datasheet's floating-point humidity routine (section 4.2.3).
fn humidity_double(cal: &Calibration, adc_h: i32, t_fine: i32) -> f64 {
    let (h1, h2, h3, h4, h5, h6) = (
        f64::from(cal.h1),
        f64::from(cal.h2),
        f64::from(cal.h3),
        f64::from(cal.h4),
        f64::from(cal.h5),
        f64::from(cal.h6),
    );
    let mut v = f64::from(t_fine) - 76_800.0;
    v = (f64::from(adc_h) - (h4 * 64.0 + h5 / 16_384.0 * v))
        * (h2 / 65_536.0 * (1.0 + h6 / 67_108_864.0 * v * (1.0 + h3 / 67_108_864.0 * v)));
    v *= 1.0 - h1 * v / 524_288.0;
    v.clamp(0.0, 100.0)
}

#[test]
fn humidity_integer_routine_agrees_with_the_double_one_and_clamps() {
    let cal = example_calibration();
    let (_, t_fine) = cal.compensate_t(519_888);
    for adc_h in [22_000, 26_000, 30_000, 34_000] {
        let int = f64::from(cal.compensate_h(adc_h, t_fine)) / 1024.0;
        let dbl = humidity_double(&cal, adc_h, t_fine);
        assert!((int - dbl).abs() < 0.05, "adc_h {adc_h}: {int} vs {dbl}");
        assert!(int > 0.0 && int < 100.0, "{int}");
    }
    assert_eq!(cal.compensate_h(0, t_fine), 0);
    assert_eq!(cal.compensate_h(65_535, t_fine), 100 * 1024);
}

#[test]
fn corrupt_inputs_give_none_or_clamped_values_not_panics() {
    let cal = Calibration {
        p1: 0,
        ..example_calibration()
    };
    assert_eq!(cal.compensate_p(415_148, 128_422), None);
    let cal = Calibration {
        t2: i16::MAX,
        t3: i16::MIN,
        ..example_calibration()
    };
    for adc in [0, 0xf_ffff, -1_000_000] {
        let (_, t_fine) = cal.compensate_t(adc);
        let _ = cal.compensate_p(adc, t_fine);
        let _ = cal.compensate_h(adc, t_fine);
    }
    // Skipped measurements are reported as missing.
    let skipped = RawSample {
        adc_p: 0x80000,
        adc_t: 519_888,
        adc_h: 0x8000,
    };
    let [t, p, h] = compensate(&example_calibration(), &skipped, true);
    assert_eq!((t.is_some(), p, h), (true, None, None));
}

#[test]
fn calibration_registers_round_trip_including_the_split_h4_h5() {
    let cal = Calibration {
        h4: -300,
        h5: -7,
        h6: -5,
        ..example_calibration()
    };
    let (tp, h) = cal.to_registers();
    assert_eq!(Calibration::from_registers(&tp, &h), cal);
    // dig_T1 sits little-endian at 0x88/0x89 (DS table 16).
    assert_eq!(u16::from_le_bytes([tp[0], tp[1]]), 27504);
    let raw = RawSample::from_registers(&EXAMPLE.to_registers());
    assert_eq!(raw, EXAMPLE);
}

fn config(chip: Chip, mode: Mode) -> Bme280Config {
    Bme280Config {
        chip,
        bus: 1,
        address: 0x76,
        mode,
        oversampling: 1,
        filter: 4,
        standby: Standby::Ms125,
    }
}

fn open(bus: &FakeBus, cfg: &Bme280Config) -> Result<Bme280, SensorError> {
    Bme280::open(cfg, Box::new(bus.clone()), cfg.channel_specs("env"))
}

#[test]
fn forced_mode_reads_the_datasheet_example_through_the_bus() {
    let bus = FakeBus::new("/dev/i2c-1");
    bus.attach(
        0x76,
        FakeBme280::new(ID_BME280, &example_calibration(), EXAMPLE),
    );
    let cfg = config(Chip::Bme280, Mode::Forced);
    let mut s = open(&bus, &cfg).unwrap();
    assert_eq!(s.calibration(), &example_calibration());
    let names: Vec<_> = s.channels().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["env.temperature", "env.pressure", "env.humidity"]);
    let r = s.read().unwrap();
    assert_eq!(r.values[0], Some(25.08));
    assert_eq!(r.values[1], Some(25_767_233.0 / 256.0));
    let h = r.values[2].unwrap();
    assert!((h - humidity_double(&example_calibration(), 30_000, 128_422)).abs() < 0.05);
    s.read().unwrap();
    let mut b: Box<dyn I2cBus> = Box::new(bus.clone());
    let mut cfg_reg = [0u8];
    b.read_registers(0x76, REG_CONFIG, &mut cfg_reg).unwrap();
    let mut ctrl_hum = [0u8];
    b.read_registers(0x76, REG_CTRL_HUM, &mut ctrl_hum).unwrap();
    // t_sb 125 ms = code 2, filter 4 = code 2 (DS 5.4.6); osrs_h x1.
    assert_eq!(cfg_reg[0], (2 << 5) | (2 << 2));
    assert_eq!(ctrl_hum[0], 1);
}

#[test]
fn normal_mode_configures_once_and_reads_latest() {
    let bus = FakeBus::new("/dev/i2c-1");
    bus.attach(
        0x76,
        FakeBme280::new(ID_BME280, &example_calibration(), EXAMPLE),
    );
    let cfg = config(Chip::Bme280, Mode::Normal);
    let mut s = open(&bus, &cfg).unwrap();
    let before = bus.transfers();
    let r = s.read().unwrap();
    assert_eq!(r.values[0], Some(25.08));
    // One burst read of the data registers, no start, no status poll.
    assert_eq!(bus.transfers() - before, 1);
    let mut b: Box<dyn I2cBus> = Box::new(bus.clone());
    let mut ctrl = [0u8];
    b.read_registers(0x76, REG_CTRL_MEAS, &mut ctrl).unwrap();
    assert_eq!(ctrl[0], (1 << 5) | (1 << 2) | MODE_NORMAL);
}

#[test]
fn bmp280_has_no_humidity_channel() {
    let bus = FakeBus::new("/dev/i2c-1");
    bus.attach(
        0x76,
        FakeBme280::new(ID_BMP280, &example_calibration(), EXAMPLE),
    );
    let cfg = config(Chip::Bmp280, Mode::Forced);
    let mut s = open(&bus, &cfg).unwrap();
    let r = s.read().unwrap();
    assert_eq!(r.values.len(), 2);
    assert_eq!(r.values[0], Some(25.08));
}

#[test]
fn wrong_chip_id_is_a_typed_error() {
    let bus = FakeBus::new("/dev/i2c-1");
    bus.attach(
        0x76,
        FakeBme280::new(ID_BMP280, &example_calibration(), EXAMPLE),
    );
    let err = open(&bus, &config(Chip::Bme280, Mode::Forced)).unwrap_err();
    assert!(
        matches!(
            err,
            SensorError::WrongChip {
                expected: 0x60,
                found: 0x58,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "/dev/i2c-1 address 0x76: chip ID 0x58, expected 0x60 (BME280)"
    );
}

#[test]
fn absent_or_silent_chip_and_hung_measurement_are_errors() {
    let bus = FakeBus::new("/dev/i2c-1");
    let err = open(&bus, &config(Chip::Bme280, Mode::Forced)).unwrap_err();
    assert!(matches!(err, SensorError::Bus { .. }), "{err}");

    bus.attach(
        0x76,
        FakeBme280::new(ID_BME280, &example_calibration(), EXAMPLE),
    );
    let mut s = open(&bus, &config(Chip::Bme280, Mode::Forced)).unwrap();
    bus.set_answering(0x76, false);
    assert!(matches!(s.read(), Err(SensorError::Bus { .. })));
    bus.set_answering(0x76, true);
    assert!(s.read().is_ok());

    // Make the chip report "measuring" forever.
    let mut stuck = FakeBme280::new(ID_BME280, &example_calibration(), EXAMPLE);
    stuck.stuck = true;
    let bus2 = FakeBus::new("/dev/i2c-2");
    bus2.attach(0x76, stuck);
    let mut s = open(&bus2, &config(Chip::Bme280, Mode::Forced)).unwrap();
    let err = s.read().unwrap_err();
    assert!(matches!(err, SensorError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("address 0x76 measurement not ready"),
        "{err}"
    );
}

#[test]
fn blank_calibration_is_rejected() {
    let bus = FakeBus::new("/dev/i2c-1");
    bus.attach(
        0x76,
        FakeBme280::new(ID_BME280, &Calibration::default(), EXAMPLE),
    );
    let err = open(&bus, &config(Chip::Bme280, Mode::Forced)).unwrap_err();
    assert!(
        err.to_string().contains("calibration data is blank"),
        "{err}"
    );
}

#[test]
fn measurement_time_follows_the_datasheet_formula() {
    let mut c = config(Chip::Bme280, Mode::Forced);
    // 1.25 + 2.3 + 2.875 + 2.875 = 9.3 ms at x1.
    assert_eq!(c.max_measurement_time(), Duration::from_micros(9300));
    c.oversampling = 16;
    // 1.25 + 36.8 + 37.375 + 37.375 = 112.8 ms at x16.
    assert_eq!(c.max_measurement_time(), Duration::from_micros(112_800));
    c.chip = Chip::Bmp280;
    assert_eq!(c.max_measurement_time(), Duration::from_micros(75_425));
}

#[test]
fn standby_codes_follow_table_27() {
    assert_eq!(Standby::from_ms(0.5).map(Standby::code), Some(0));
    assert_eq!(Standby::from_ms(1000.0).map(Standby::code), Some(5));
    assert_eq!(Standby::from_ms(10.0).map(Standby::code), Some(6));
    assert_eq!(Standby::from_ms(20.0).map(Standby::code), Some(7));
    assert_eq!(Standby::from_ms(7.0), None);
}
