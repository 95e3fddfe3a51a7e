# config.txt: Bluetooth off so that the PL011 on header pins 8/10 is the
# console, and the sipsensor overlays listed for the technician to enable.
RPI_EXTRA_CONFIG:append:raspberrypi4-64 = "\n\
# Serial console on the PL011 (pins 8/10), Bluetooth off.\n\
dtoverlay=disable-bt\n\
# Sensor overlays: remove the # in front of each one that is wired\n\
# (pins and options: docs/sensors.md of the sipsensor repository).\n\
#dtoverlay=sipsensor-bme280\n\
#dtoverlay=sipsensor-ads1115\n\
#dtoverlay=sipsensor-ds18b20\n\
#dtoverlay=sipsensor-gpio\n\
"
