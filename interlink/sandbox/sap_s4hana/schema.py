"""The entity sets the SAP sandbox serves: services, keys, property types and navigations.

Property names, types and key fields follow SAP's published OpenAPI documents
of each service (see the package docstring for the sources). Each set keeps a
subset of the real properties: the ones a connector maps plus a few that show
the real payload's shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

S = "Edm.String"
D = "Edm.Decimal"
B = "Edm.Boolean"
DT = "Edm.DateTime"
DTO = "Edm.DateTimeOffset"
T = "Edm.Time"


@dataclass(frozen=True)
class Navigation:
    """A navigation property: the target set and the property pairs that join them."""

    name: str
    target: str
    many: bool
    join: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EntitySet:
    """One entity set of one OData service."""

    service: str
    name: str
    type_name: str
    namespace: str
    keys: tuple[str, ...]
    properties: dict[str, str]
    navigations: tuple[Navigation, ...] = ()
    # Properties the sandbox stamps with the change time when a record of this set changes.
    change_stamps: tuple[str, ...] = ()
    # The set whose change stamps move when a record of this set changes, if any.
    stamps_parent: str | None = None
    parent_join: tuple[tuple[str, str], ...] = field(default=())

    def navigation(self, name: str) -> Navigation | None:
        return next((nav for nav in self.navigations if nav.name == name), None)

    @property
    def qualified_type(self) -> str:
        return f"{self.namespace}.{self.type_name}"


PURCHASE_ORDER = EntitySet(
    service="API_PURCHASEORDER_PROCESS_SRV",
    name="A_PurchaseOrder",
    type_name="A_PurchaseOrderType",
    namespace="API_PURCHASEORDER_PROCESS_SRV",
    keys=("PurchaseOrder",),
    properties={
        "PurchaseOrder": S,
        "CompanyCode": S,
        "PurchaseOrderType": S,
        "PurchasingDocumentDeletionCode": S,
        "PurchasingProcessingStatus": S,
        "CreatedByUser": S,
        "CreationDate": DT,
        "LastChangeDateTime": DTO,
        "Supplier": S,
        "Language": S,
        "PaymentTerms": S,
        "PurchasingOrganization": S,
        "PurchasingGroup": S,
        "PurchaseOrderDate": DT,
        "DocumentCurrency": S,
        "ExchangeRate": D,
        "IncotermsClassification": S,
        "ReleaseIsNotCompleted": B,
    },
    navigations=(
        Navigation(
            "to_PurchaseOrderItem", "A_PurchaseOrderItem", True, (("PurchaseOrder", "PurchaseOrder"),)
        ),
    ),
    change_stamps=("LastChangeDateTime",),
)

PURCHASE_ORDER_ITEM = EntitySet(
    service="API_PURCHASEORDER_PROCESS_SRV",
    name="A_PurchaseOrderItem",
    type_name="A_PurchaseOrderItemType",
    namespace="API_PURCHASEORDER_PROCESS_SRV",
    keys=("PurchaseOrder", "PurchaseOrderItem"),
    properties={
        "PurchaseOrder": S,
        "PurchaseOrderItem": S,
        "PurchasingDocumentDeletionCode": S,
        "PurchaseOrderItemText": S,
        "Plant": S,
        "StorageLocation": S,
        "MaterialGroup": S,
        "OrderQuantity": D,
        "PurchaseOrderQuantityUnit": S,
        "DocumentCurrency": S,
        "NetPriceAmount": D,
        "NetPriceQuantity": D,
        "TaxCode": S,
        "IsCompletelyDelivered": B,
        "IsFinallyInvoiced": B,
        "GoodsReceiptIsExpected": B,
        "InvoiceIsExpected": B,
        "Material": S,
    },
    navigations=(
        Navigation("to_PurchaseOrder", "A_PurchaseOrder", False, (("PurchaseOrder", "PurchaseOrder"),)),
    ),
)

MAINTENANCE_ORDER = EntitySet(
    service="API_MAINTENANCEORDER",
    name="MaintenanceOrder",
    type_name="MaintenanceOrderType",
    namespace="cds_api_maintenanceorder",
    keys=("MaintenanceOrder",),
    properties={
        "MaintenanceOrder": S,
        "MaintenanceOrderType": S,
        "MaintenanceOrderDesc": S,
        "MaintOrdBasicStartDateTime": DTO,
        "MaintOrdBasicEndDateTime": DTO,
        "MaintOrdBasicStartDate": DT,
        "MaintOrdBasicEndDate": DT,
        "MaintOrdSchedldBscStrtDateTime": DTO,
        "MaintenanceNotification": S,
        "MainWorkCenter": S,
        "MaintenancePlanningPlant": S,
        "MaintenancePlant": S,
        "Equipment": S,
        "EquipmentName": S,
        "FunctionalLocation": S,
        "MaintenanceActivityType": S,
        "MaintPriority": S,
        "MaintPriorityType": S,
        "MaintOrdPersonResponsible": S,
        "LastChangeDateTime": DTO,
        "CreatedByUser": S,
        "SystemStatusText": S,
        "UserStatusText": S,
    },
    navigations=(
        Navigation(
            "to_MaintenanceOrderOperation",
            "MaintenanceOrderOperation",
            True,
            (("MaintenanceOrder", "MaintenanceOrder"),),
        ),
    ),
    change_stamps=("LastChangeDateTime",),
)

MAINTENANCE_ORDER_OPERATION = EntitySet(
    service="API_MAINTENANCEORDER",
    name="MaintenanceOrderOperation",
    type_name="MaintenanceOrderOperationType",
    namespace="cds_api_maintenanceorder",
    keys=("MaintenanceOrder", "MaintenanceOrderOperation", "MaintenanceOrderSubOperation"),
    properties={
        "MaintenanceOrder": S,
        "MaintenanceOrderOperation": S,
        "MaintenanceOrderSubOperation": S,
        "OperationControlKey": S,
        "WorkCenter": S,
        "Plant": S,
        "OperationDescription": S,
        "MaintOrderOperationDuration": D,
        "MaintOrdOperationDurationUnit": S,
        "MaintOrdOperationWorkDuration": D,
        "MaintOrdOpWorkDurationUnit": S,
        "ActualWorkQuantity": D,
        "IsMarkedForDeletion": B,
        "SystemStatusText": S,
    },
    navigations=(
        Navigation(
            "to_MaintenanceOrder", "MaintenanceOrder", False, (("MaintenanceOrder", "MaintenanceOrder"),)
        ),
    ),
)

BUSINESS_PARTNER = EntitySet(
    service="API_BUSINESS_PARTNER",
    name="A_BusinessPartner",
    type_name="A_BusinessPartnerType",
    namespace="API_BUSINESS_PARTNER",
    keys=("BusinessPartner",),
    properties={
        "BusinessPartner": S,
        "Customer": S,
        "Supplier": S,
        "BusinessPartnerCategory": S,
        "BusinessPartnerFullName": S,
        "BusinessPartnerName": S,
        "CreatedByUser": S,
        "CreationDate": DT,
        "CreationTime": T,
        "LastChangeDate": DT,
        "LastChangeTime": T,
        "LastChangedByUser": S,
        "OrganizationBPName1": S,
        "SearchTerm1": S,
        "BusinessPartnerIsBlocked": B,
        "IsMarkedForArchiving": B,
    },
    navigations=(
        Navigation(
            "to_BusinessPartnerAddress",
            "A_BusinessPartnerAddress",
            True,
            (("BusinessPartner", "BusinessPartner"),),
        ),
    ),
    change_stamps=("LastChangeDate", "LastChangeTime"),
)

BUSINESS_PARTNER_ADDRESS = EntitySet(
    service="API_BUSINESS_PARTNER",
    name="A_BusinessPartnerAddress",
    type_name="A_BusinessPartnerAddressType",
    namespace="API_BUSINESS_PARTNER",
    keys=("BusinessPartner", "AddressID"),
    properties={
        "BusinessPartner": S,
        "AddressID": S,
        "CityName": S,
        "Country": S,
        "HouseNumber": S,
        "PostalCode": S,
        "Region": S,
        "StreetName": S,
        "Language": S,
    },
    navigations=(
        Navigation("to_EmailAddress", "A_AddressEmailAddress", True, (("AddressID", "AddressID"),)),
        Navigation("to_PhoneNumber", "A_AddressPhoneNumber", True, (("AddressID", "AddressID"),)),
    ),
    stamps_parent="A_BusinessPartner",
    parent_join=(("BusinessPartner", "BusinessPartner"),),
)

ADDRESS_EMAIL = EntitySet(
    service="API_BUSINESS_PARTNER",
    name="A_AddressEmailAddress",
    type_name="A_AddressEmailAddressType",
    namespace="API_BUSINESS_PARTNER",
    keys=("AddressID", "Person", "OrdinalNumber"),
    properties={
        "AddressID": S,
        "Person": S,
        "OrdinalNumber": S,
        "IsDefaultEmailAddress": B,
        "EmailAddress": S,
    },
    stamps_parent="A_BusinessPartnerAddress",
    parent_join=(("AddressID", "AddressID"),),
)

ADDRESS_PHONE = EntitySet(
    service="API_BUSINESS_PARTNER",
    name="A_AddressPhoneNumber",
    type_name="A_AddressPhoneNumberType",
    namespace="API_BUSINESS_PARTNER",
    keys=("AddressID", "Person", "OrdinalNumber"),
    properties={
        "AddressID": S,
        "Person": S,
        "OrdinalNumber": S,
        "DestinationLocationCountry": S,
        "IsDefaultPhoneNumber": B,
        "PhoneNumber": S,
        "InternationalPhoneNumber": S,
    },
    stamps_parent="A_BusinessPartnerAddress",
    parent_join=(("AddressID", "AddressID"),),
)

PRODUCT = EntitySet(
    service="API_PRODUCT_SRV",
    name="A_Product",
    type_name="A_ProductType",
    namespace="API_PRODUCT_SRV",
    keys=("Product",),
    properties={
        "Product": S,
        "ProductType": S,
        "CreationDate": DT,
        "CreatedByUser": S,
        "LastChangeDate": DT,
        "LastChangedByUser": S,
        "LastChangeDateTime": DTO,
        "IsMarkedForDeletion": B,
        "ProductGroup": S,
        "BaseUnit": S,
        "GrossWeight": D,
        "WeightUnit": S,
        "ProductManufacturerNumber": S,
        "ManufacturerNumber": S,
    },
    navigations=(Navigation("to_Description", "A_ProductDescription", True, (("Product", "Product"),)),),
    change_stamps=("LastChangeDateTime", "LastChangeDate"),
)

PRODUCT_DESCRIPTION = EntitySet(
    service="API_PRODUCT_SRV",
    name="A_ProductDescription",
    type_name="A_ProductDescriptionType",
    namespace="API_PRODUCT_SRV",
    keys=("Product", "Language"),
    properties={"Product": S, "Language": S, "ProductDescription": S},
    stamps_parent="A_Product",
    parent_join=(("Product", "Product"),),
)

EQUIPMENT = EntitySet(
    service="API_EQUIPMENT",
    name="Equipment",
    type_name="EquipmentType",
    namespace="cds_api_equipment",
    keys=("Equipment", "ValidityEndDate"),
    properties={
        "Equipment": S,
        "ValidityEndDate": DT,
        "ValidityStartDate": DT,
        "EquipmentName": S,
        "EquipmentCategory": S,
        "TechnicalObjectType": S,
        "AcquisitionValue": D,
        "Currency": S,
        "AcquisitionDate": DT,
        "AssetManufacturerName": S,
        "ManufacturerPartTypeName": S,
        "ManufacturerSerialNumber": S,
        "MaintenancePlant": S,
        "FunctionalLocation": S,
        "SuperordinateEquipment": S,
        "SerialNumber": S,
        "OperationStartDate": DT,
        "CreationDate": DT,
        "LastChangedByUser": S,
        "LastChangeDateTime": DTO,
        "EquipmentIsMarkedForDeletion": B,
        "EquipmentIsInactive": B,
    },
    change_stamps=("LastChangeDateTime",),
)

FUNCTIONAL_LOCATION = EntitySet(
    service="API_FUNCTIONALLOCATION",
    name="FunctionalLocation",
    type_name="FunctionalLocationType",
    namespace="cds_api_functionallocation",
    keys=("FunctionalLocation",),
    properties={
        "FunctionalLocation": S,
        "FunctionalLocationLabelName": S,
        "FunctionalLocationName": S,
        "FunctionalLocationCategory": S,
        "SuperiorFunctionalLocation": S,
        "MaintenancePlant": S,
        "CityName": S,
        "PostalCode": S,
        "StreetName": S,
        "HouseNumber": S,
        "Region": S,
        "Country": S,
        "LastChangeDateTime": DTO,
        "FuncnlLocIsMarkedForDeletion": B,
        "FunctionalLocationIsActive": B,
    },
    change_stamps=("LastChangeDateTime",),
)

ENTITY_SETS: dict[str, EntitySet] = {
    entity_set.name: entity_set
    for entity_set in (
        PURCHASE_ORDER,
        PURCHASE_ORDER_ITEM,
        MAINTENANCE_ORDER,
        MAINTENANCE_ORDER_OPERATION,
        BUSINESS_PARTNER,
        BUSINESS_PARTNER_ADDRESS,
        ADDRESS_EMAIL,
        ADDRESS_PHONE,
        PRODUCT,
        PRODUCT_DESCRIPTION,
        EQUIPMENT,
        FUNCTIONAL_LOCATION,
    )
}

SERVICES: dict[str, list[EntitySet]] = {}
for _entity_set in ENTITY_SETS.values():
    SERVICES.setdefault(_entity_set.service, []).append(_entity_set)
