//! A fake BME280/BMP280 for tests: register file plus the behaviour the
//! driver relies on (reset, forced measurement with a busy status).

use super::*;
use crate::sensor::i2c::fake::{FakeDevice, RegisterChip};

#[derive(Debug, Clone)]
pub struct FakeBme280 {
    pub chip: RegisterChip,
    /// Status reads that report "measuring" after a forced start.
    pub busy_reads: u32,
    busy_left: u32,
    pub forced_starts: u32,
    pub resets: u32,
    /// Report "measuring" forever (a hung chip).
    pub stuck: bool,
}

impl FakeBme280 {
    pub fn new(id: u8, cal: &Calibration, raw: RawSample) -> Self {
        let (tp, h) = cal.to_registers();
        FakeBme280 {
            chip: RegisterChip::new()
                .with(REG_ID, &[id])
                .with(REG_CALIB_TP, &tp)
                .with(REG_CALIB_H, &h)
                .with(REG_DATA, &raw.to_registers()),
            busy_reads: 1,
            busy_left: 0,
            forced_starts: 0,
            resets: 0,
            stuck: false,
        }
    }

    pub fn set_raw(&mut self, raw: RawSample) {
        self.chip = self.chip.clone().with(REG_DATA, &raw.to_registers());
    }
}

impl FakeDevice for FakeBme280 {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let [reg, value, ..] = data {
            match (*reg, *value) {
                (REG_RESET, RESET_WORD) => {
                    self.resets += 1;
                    self.chip.regs[usize::from(REG_CTRL_MEAS)] = 0;
                    self.chip.regs[usize::from(REG_CONFIG)] = 0;
                    self.chip.regs[usize::from(REG_CTRL_HUM)] = 0;
                    return Ok(());
                }
                (REG_CTRL_MEAS, v) if v & 0b11 == MODE_FORCED || v & 0b11 == 0b10 => {
                    self.forced_starts += 1;
                    self.busy_left = self.busy_reads;
                }
                _ => {}
            }
        }
        self.chip.write(data)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let status_read = buf.len() == 1 && self.chip.pointer() == REG_STATUS;
        self.chip.read(buf)?;
        if status_read {
            if self.stuck || self.busy_left > 0 {
                self.busy_left = self.busy_left.saturating_sub(1);
                buf[0] = STATUS_MEASURING;
            } else {
                buf[0] = 0;
                // Forced mode returns to sleep when done (DS 3.3.3).
                let m = &mut self.chip.regs[usize::from(REG_CTRL_MEAS)];
                if *m & 0b11 != MODE_NORMAL {
                    *m &= !0b11;
                }
            }
        }
        Ok(())
    }
}
