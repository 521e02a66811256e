"""The scripted day: the regime the caller declares and the faults, hours or (hour, minute) in
Beijing time, the devices' clock. `plant` plays them; `expected` derives their anomalies.

The regime (`SHUTDOWN_FROM`, `ORANGE`, `RED`): a shutdown order for L1 from 10:00, an orange
alert 12:00-20:00, then red 20:00-22:00. The faults:

- 03:00 COD over its limit at DW1 (`over_limit`);
- the 05:00 hour of DW1 is not sent; DW1 back-fills it when the gateway asks (`data_gap`);
- 06:00 SO2 at odd enterprises' DA1 over its limit as measured but not at 9 % O2 (no anomaly);
  08:00 under it as measured but over at 9 % O2 (`over_limit`);
- 07:00 SO2 at DB1 under its limit as measured, over it at 9 % O2 (`over_limit`);
- 08:00-08:40 treatment off while L1 runs (`treatment_not_running`; T1's array of 08:00-08:25
  arrives at 08:25);
- 09:00-09:40 DA1 reports zero dust while L1 runs (`suspicious_data`);
- L1 stops at 10:30 under the order but runs again 12:00-12:40, after its 2 h grace
  (`production_during_shutdown`), with flue gas flowing at DA1 until its first flag-F value at
  12:40 (`emission_during_shutdown`);
- DV1 falls silent at 11:00 for good (`device_offline`, judged on the wall clock);
- L2 keeps full power under the orange plan's 30 % cut (`curtailment_exceeded` against the
  previous day);
- L3 runs through the orange plan's stop and the red one that follows it
  (`production_during_shutdown` from 14:00, the orange start + 2 h, until red ends at 22:00);
- a 国四 diesel heavy truck enters at 14:30 (`banned_vehicle_entry`); a 国五 one at 14:40 and the
  permitted 国四 one at 14:50 are allowed;
- L4 (coating, a VOCs process) must stop every day 11:00-14:00 (its time-of-day schedule); it
  does on the normal day, but runs through it on the scripted day (`production_during_shutdown`
  from 13:00, after the 2 h ramp-down, until 14:00);
- under the orange plan, L2's load (P2 in % of 210 kW) may not exceed 70 %: it stays near full
  (`plan_indicator_exceeded` from the orange start + 2 h grace until L2 stops at 20:00);
- at the gate, standing rules for coking plants (non-road machinery of 国2 and below, or without
  a registration code, may not enter): a 国二 loader at 15:00 and an unregistered 国三 one at 15:10
  (`banned_vehicle_entry`); a registered 国三 one at 15:30 is allowed; a 国五 truck that came in
  empty at 14:55 leaves with muck (渣土) at 15:20, which the orange plan bans in and out
  (`banned_vehicle_entry`, its exit);
- 16:00 a frame under DW1's MN with a wrong password (`auth_failure`);
- 16:10 a logger whose MN is not registered uploads (`unregistered_device`);
- DW1 sends no hourly data from 18:00 on, only heartbeats, and has none to back-fill
  (`data_gap`, open).
"""

# The regime the caller declares for the scripted day (`devkit.demo.regime_for`), in hours:
SHUTDOWN_FROM = 10  # a shutdown order for line L1, until the day's end
ORANGE = (12, 20)  # an orange alert over the region
RED = (20, 22)  # then red, without a gap

# The scripted faults:
COD_FAULT_HOUR = 3
UNSENT_HOUR = 5  # DW1's hour kept for the back-fill
SPLIT_FAULTS = {6: (115.0, 6.0), 8: (80.0, 13.0)}  # odd DA1: hour -> (SO2, O2) measured
BOILER_FAULT = (7, 70.0, 15.0)  # DB1: hour, SO2, O2 measured
TREATMENT_OFF = ((8, 0), (8, 40))
DUST_ZEROS = ((9, 0), (9, 40))
L1_STOP = (10, 30)
L1_RESTART = ((12, 0), (12, 40))
DV1_SILENT = 11
BANNED_IN, ALLOWED_IN, PERMIT_IN = (14, 30), (14, 40), (14, 50)
OLD_MACHINE_IN, UNREGISTERED_IN, REGISTERED_IN = (15, 0), (15, 10), (15, 30)
MUCK_TRUCK_IN, MUCK_OUT = (14, 55), (15, 20)  # enters empty, leaves with muck under orange
L2_RATED_KW, L2_MAX_LOAD = 210.0, 70.0  # L2's load indicator and the orange plan's limit
L4_PAUSE = ((11, 0), (14, 0))  # L4's daily stop (a schedule), run through on the scripted day
IMPOSTOR_AT, UNKNOWN_AT = (16, 0), (16, 10)
HOURLY_UNTIL = 18  # DW1 sends only heartbeats from this hour on
