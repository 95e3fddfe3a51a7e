//! The I2C bus behind a small trait: `i2cdev` on a device, a fake in tests.
//!
//! Register access goes through SMBus "I2C block" transfers rather than
//! raw `I2C_RDWR`, so the same code works on SMBus-only adapters (and on
//! the kernel's `i2c-stub`, which the image tests use).

use super::SensorError;
use i2cdev::core::I2CDevice;
use i2cdev::linux::{LinuxI2CDevice, LinuxI2CError};
use std::io;
use std::path::PathBuf;

/// SMBus block transfers carry at most 32 bytes.
const SMBUS_BLOCK_MAX: usize = 32;

/// One I2C bus.
pub trait I2cBus: Send {
    /// For messages: `/dev/i2c-1`.
    fn name(&self) -> &str;

    /// Read `buf.len()` bytes from consecutive registers starting at `reg`.
    fn read_registers(&mut self, address: u8, reg: u8, buf: &mut [u8]) -> io::Result<()>;

    /// Write one register.
    fn write_register(&mut self, address: u8, reg: u8, value: u8) -> io::Result<()>;

    /// A plain write, for chips driven by commands rather than registers.
    fn write(&mut self, address: u8, data: &[u8]) -> io::Result<()>;

    /// A plain read.
    fn read(&mut self, address: u8, buf: &mut [u8]) -> io::Result<()>;
}

/// Opens bus number N: `/dev/i2c-N` on a device.
pub trait I2cOpener: Send + Sync {
    fn open(&self, bus: u32) -> Result<Box<dyn I2cBus>, SensorError>;
}

/// The kernel's i2c-dev interface.
#[derive(Debug, Clone)]
pub struct LinuxI2cOpener {
    pub dev_root: PathBuf,
}

impl I2cOpener for LinuxI2cOpener {
    fn open(&self, bus: u32) -> Result<Box<dyn I2cBus>, SensorError> {
        let path = self.dev_root.join(format!("i2c-{bus}"));
        // Opening checks the node exists and we may use it; the slave
        // address is set per transfer.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| SensorError::Open {
                what: path.display().to_string(),
                source,
            })?;
        Ok(Box::new(LinuxI2cBus {
            name: path.display().to_string(),
            path,
            device: None,
        }))
    }
}

/// `/dev/i2c-N` through `i2cdev`, one slave address at a time.
pub struct LinuxI2cBus {
    name: String,
    path: PathBuf,
    device: Option<(u8, LinuxI2CDevice)>,
}

impl std::fmt::Debug for LinuxI2cBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxI2cBus")
            .field("name", &self.name)
            .finish()
    }
}

fn io_err(e: LinuxI2CError) -> io::Error {
    let e = io::Error::from(e);
    if e.raw_os_error() == Some(nix::libc::EBUSY) {
        // I2C_SLAVE refuses an address a kernel driver has bound.
        return io::Error::new(
            e.kind(),
            "address in use by a kernel driver (use an `iio` sensor for it)",
        );
    }
    e
}

impl LinuxI2cBus {
    fn at(&mut self, address: u8) -> io::Result<&mut LinuxI2CDevice> {
        if self.device.as_ref().map(|(a, _)| *a) != Some(address) {
            let dev = LinuxI2CDevice::new(&self.path, u16::from(address)).map_err(io_err)?;
            self.device = Some((address, dev));
        }
        match &mut self.device {
            Some((_, dev)) => Ok(dev),
            None => Err(io::Error::other("no device")),
        }
    }
}

impl I2cBus for LinuxI2cBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn read_registers(&mut self, address: u8, reg: u8, buf: &mut [u8]) -> io::Result<()> {
        let dev = self.at(address)?;
        let mut reg = reg;
        for chunk in buf.chunks_mut(SMBUS_BLOCK_MAX) {
            let len = u8::try_from(chunk.len()).unwrap_or(32);
            let data = dev.smbus_read_i2c_block_data(reg, len).map_err(io_err)?;
            if data.len() != chunk.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("short read: {} of {} bytes", data.len(), chunk.len()),
                ));
            }
            chunk.copy_from_slice(&data);
            reg = reg.wrapping_add(len);
        }
        Ok(())
    }

    fn write_register(&mut self, address: u8, reg: u8, value: u8) -> io::Result<()> {
        self.at(address)?
            .smbus_write_byte_data(reg, value)
            .map_err(io_err)
    }

    fn write(&mut self, address: u8, data: &[u8]) -> io::Result<()> {
        self.at(address)?.write(data).map_err(io_err)
    }

    fn read(&mut self, address: u8, buf: &mut [u8]) -> io::Result<()> {
        self.at(address)?.read(buf).map_err(io_err)
    }
}

/// A fake bus for tests (unit tests here, `probe` tests, and system tests
/// that run the agent without hardware).
pub mod fake {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard};

    /// A chip on the fake bus. Register access is modelled the way
    /// register chips behave: a write of `[reg]` sets the pointer, a write
    /// of `[reg, value, ...]` writes, a read reads from the pointer on.
    pub trait FakeDevice: Send {
        fn write(&mut self, data: &[u8]) -> io::Result<()>;
        fn read(&mut self, buf: &mut [u8]) -> io::Result<()>;
    }

    /// A plain register file with an auto-incrementing pointer; register
    /// writes come in (register, value) pairs as on the Bosch chips.
    #[derive(Debug, Clone)]
    pub struct RegisterChip {
        pub regs: [u8; 256],
        pointer: u8,
    }

    impl RegisterChip {
        pub fn new() -> Self {
            RegisterChip {
                regs: [0; 256],
                pointer: 0,
            }
        }

        /// The register the next read starts at.
        pub fn pointer(&self) -> u8 {
            self.pointer
        }

        pub fn with(mut self, reg: u8, bytes: &[u8]) -> Self {
            for (i, b) in bytes.iter().enumerate() {
                self.regs[usize::from(reg) + i] = *b;
            }
            self
        }
    }

    impl Default for RegisterChip {
        fn default() -> Self {
            Self::new()
        }
    }

    impl FakeDevice for RegisterChip {
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            match data {
                [] => Ok(()),
                [reg] => {
                    self.pointer = *reg;
                    Ok(())
                }
                pairs => {
                    for p in pairs.chunks(2) {
                        if let [reg, value] = p {
                            self.regs[usize::from(*reg)] = *value;
                        }
                    }
                    Ok(())
                }
            }
        }

        fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
            for b in buf {
                *b = self.regs[usize::from(self.pointer)];
                self.pointer = self.pointer.wrapping_add(1);
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Inner {
        devices: BTreeMap<u8, Box<dyn FakeDevice>>,
        /// Addresses that stopped answering (NACK).
        silent: Vec<u8>,
        transfers: u64,
    }

    /// A bus shared between the test and the code under test.
    #[derive(Clone, Default)]
    pub struct FakeBus {
        name: String,
        inner: Arc<Mutex<Inner>>,
    }

    impl std::fmt::Debug for FakeBus {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("FakeBus").field("name", &self.name).finish()
        }
    }

    fn nack() -> io::Error {
        // What i2c-dev reports for a NACK from the address.
        io::Error::from_raw_os_error(nix::libc::ENXIO)
    }

    impl FakeBus {
        pub fn new(name: &str) -> Self {
            FakeBus {
                name: name.to_owned(),
                inner: Arc::default(),
            }
        }

        fn lock(&self) -> MutexGuard<'_, Inner> {
            // A panicking test thread poisons the lock; the data is
            // still usable for the remaining assertions.
            self.inner.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub fn attach(&self, address: u8, device: impl FakeDevice + 'static) {
            self.lock().devices.insert(address, Box::new(device));
        }

        /// Make a chip stop answering (`false`) or answer again.
        pub fn set_answering(&self, address: u8, answering: bool) {
            let mut g = self.lock();
            g.silent.retain(|a| *a != address);
            if !answering {
                g.silent.push(address);
            }
        }

        /// Run `f` on the device at `address` (to change its readings).
        pub fn with_device<R>(
            &self,
            address: u8,
            f: impl FnOnce(&mut dyn FakeDevice) -> R,
        ) -> Option<R> {
            let mut g = self.lock();
            g.devices.get_mut(&address).map(|d| f(d.as_mut()))
        }

        pub fn transfers(&self) -> u64 {
            self.lock().transfers
        }

        fn device<R>(
            &self,
            address: u8,
            f: impl FnOnce(&mut dyn FakeDevice) -> io::Result<R>,
        ) -> io::Result<R> {
            let mut g = self.lock();
            g.transfers += 1;
            if g.silent.contains(&address) {
                return Err(nack());
            }
            match g.devices.get_mut(&address) {
                Some(d) => f(d.as_mut()),
                None => Err(nack()),
            }
        }
    }

    impl I2cBus for FakeBus {
        fn name(&self) -> &str {
            &self.name
        }

        fn read_registers(&mut self, address: u8, reg: u8, buf: &mut [u8]) -> io::Result<()> {
            self.device(address, |d| {
                d.write(&[reg])?;
                d.read(buf)
            })
        }

        fn write_register(&mut self, address: u8, reg: u8, value: u8) -> io::Result<()> {
            self.device(address, |d| d.write(&[reg, value]))
        }

        fn write(&mut self, address: u8, data: &[u8]) -> io::Result<()> {
            self.device(address, |d| d.write(data))
        }

        fn read(&mut self, address: u8, buf: &mut [u8]) -> io::Result<()> {
            self.device(address, |d| d.read(buf))
        }
    }

    /// Hands out fake buses by number.
    #[derive(Clone, Default)]
    pub struct FakeOpener {
        buses: Arc<Mutex<BTreeMap<u32, FakeBus>>>,
    }

    impl std::fmt::Debug for FakeOpener {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("FakeOpener")
        }
    }

    impl FakeOpener {
        pub fn new() -> Self {
            Self::default()
        }

        /// The bus with this number, created empty on first use.
        pub fn bus(&self, n: u32) -> FakeBus {
            let mut g = self.buses.lock().unwrap_or_else(|p| p.into_inner());
            g.entry(n)
                .or_insert_with(|| FakeBus::new(&format!("/dev/i2c-{n}")))
                .clone()
        }
    }

    impl I2cOpener for FakeOpener {
        fn open(&self, bus: u32) -> Result<Box<dyn I2cBus>, SensorError> {
            let g = self.buses.lock().unwrap_or_else(|p| p.into_inner());
            match g.get(&bus) {
                Some(b) => Ok(Box::new(b.clone())),
                None => Err(SensorError::Open {
                    what: format!("/dev/i2c-{bus}"),
                    source: io::Error::from(io::ErrorKind::NotFound),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn fake_register_chip_reads_with_auto_increment() {
        let bus = FakeBus::new("fake");
        bus.attach(0x76, RegisterChip::new().with(0xd0, &[0x60, 0x11]));
        let mut b: Box<dyn I2cBus> = Box::new(bus.clone());
        let mut buf = [0u8; 2];
        b.read_registers(0x76, 0xd0, &mut buf).unwrap();
        assert_eq!(buf, [0x60, 0x11]);
        b.write_register(0x76, 0xf4, 0x25).unwrap();
        let mut one = [0u8; 1];
        b.read_registers(0x76, 0xf4, &mut one).unwrap();
        assert_eq!(one, [0x25]);
        let e = b.read_registers(0x77, 0xd0, &mut one).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENXIO));
        bus.set_answering(0x76, false);
        assert!(b.read_registers(0x76, 0xd0, &mut one).is_err());
        bus.set_answering(0x76, true);
        assert!(b.read_registers(0x76, 0xd0, &mut one).is_ok());
        assert_eq!(bus.transfers(), 6);
    }

    #[test]
    fn linux_opener_reports_a_missing_bus() {
        let dir = tempfile::tempdir().unwrap();
        let opener = LinuxI2cOpener {
            dev_root: dir.path().to_owned(),
        };
        let err = opener.open(7).err().unwrap().to_string();
        assert!(err.contains("i2c-7"), "{err}");
    }

    #[test]
    fn fake_opener_hands_out_shared_buses() {
        let o = FakeOpener::new();
        o.bus(1).attach(0x44, RegisterChip::new());
        assert!(o.open(1).is_ok());
        assert!(o.open(2).is_err());
    }
}
